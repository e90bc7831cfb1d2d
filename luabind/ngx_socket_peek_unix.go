//go:build linux || darwin || freebsd || netbsd || openbsd

package luabind

import (
	"syscall"
)

// connAlive reports whether an idle connection may be handed out: its peer
// has not closed it and sent nothing unasked, which nginx notices through
// the read event of its idle pool and answers by closing the connection.
// TLS connections are not probed, as the peer may legitimately have sent
// session tickets.
func connAlive(c *sockConn) bool {
	if c.isTLS || c.rc == nil {
		return true
	}
	c.peekAlive = true
	if err := c.rc.Read(c.peekFn); err != nil {
		return false
	}
	return c.peekAlive
}

// peek is the raw read of connAlive: any byte or EOF waiting means the
// connection is not idle any more.
func (c *sockConn) peek(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && (err != nil || n >= 0) {
		c.peekAlive = false
	}
	return true
}

func setReuseAddr(c interface {
	SyscallConn() (syscall.RawConn, error)
}, on bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, v)
	}); err != nil {
		return err
	}
	return serr
}
