//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package luabind

import "syscall"

// connAlive cannot probe a socket here; a dead pooled connection shows up
// as "closed" on its first use instead.
func connAlive(*sockConn) bool { return true }

func (c *sockConn) peek(uintptr) bool { return true }

func setReuseAddr(interface {
	SyscallConn() (syscall.RawConn, error)
}, bool) error {
	return nil
}
