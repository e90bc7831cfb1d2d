package mctest

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TotalConnections is the server at addr's count of connections ever
// accepted (stats total_connections), read on a connection of its own,
// which it counts too.
func TotalConnections(t testing.TB, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("mctest: stats: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		t.Fatalf("mctest: stats: %v", err)
	}
	n := -1
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("mctest: stats: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return n
		}
		if v, ok := strings.CutPrefix(line, "STAT total_connections "); ok {
			if n, err = strconv.Atoi(v); err != nil {
				t.Fatalf("mctest: stats: %q: %v", line, err)
			}
		}
	}
}

// FullBacklog returns a loopback address whose listener never accepts and
// whose backlog is already full, so that a further connect gets no answer
// (a connect timeout). The test is skipped on a kernel where the backlog
// cannot be filled.
func FullBacklog(t testing.TB) *net.TCPAddr {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("mctest: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("mctest: bind: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("mctest: listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("mctest: getsockname: %v", err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}
	for range 8 {
		c, err := net.DialTimeout("tcp", addr.String(), 100*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill a listen backlog on this kernel: no loopback address that never answers a connect")
	return nil
}
