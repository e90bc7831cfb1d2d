//go:build !unix

package memcached

import "net"

func pollSocket(net.Conn) (data, eof, ok bool) { return false, false, false }
