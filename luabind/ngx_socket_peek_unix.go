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
	if c.isTLS {
		return true
	}
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
		case rerr != nil || n == 0 || n > 0:
			alive = false
		}
		return true
	})
	return alive && err == nil
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
