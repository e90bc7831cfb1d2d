//go:build unix

package memcached

import (
	"net"
	"syscall"
)

// pollSocket looks at nc without blocking or consuming: data reports bytes
// waiting to be read, eof a close by the peer. ok is false where the socket
// cannot be inspected.
func pollSocket(nc net.Conn) (data, eof, ok bool) {
	sc, isSC := nc.(syscall.Conn)
	if !isSC {
		return false, false, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, false, false
	}
	var buf [1]byte
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for readiness
	}); err != nil {
		return false, false, false
	}
	switch {
	case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
		return false, false, true
	case rerr != nil:
		return false, true, true
	case n == 0:
		return false, true, true
	}
	return true, false, true
}
