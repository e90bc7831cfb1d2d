package server

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"

	"luaserve/memcached"
)

func benchConn(b *testing.B) (net.Conn, *bufio.Reader) {
	s := startEmbedded(b, Config{})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c, bufio.NewReaderSize(c, 64<<10)
}

// BenchmarkTextSetGet is one set and one get per op, waiting for replies.
func BenchmarkTextSetGet(b *testing.B) {
	c, r := benchConn(b)
	req := []byte("set bench:key 0 0 32\r\n" + strings.Repeat("v", 32) + "\r\nget bench:key\r\n")
	reply := len("STORED\r\nVALUE bench:key 0 32\r\n" + strings.Repeat("v", 32) + "\r\nEND\r\n")
	buf := make([]byte, reply)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTextGetPipelined is 100 gets per round trip.
func BenchmarkTextGetPipelined(b *testing.B) {
	c, r := benchConn(b)
	c.Write([]byte("set k 0 0 32\r\n" + strings.Repeat("v", 32) + "\r\n"))
	r.ReadString('\n')
	req := []byte(strings.Repeat("get k\r\n", 100))
	buf := make([]byte, 100*len("VALUE k 0 32\r\n"+strings.Repeat("v", 32)+"\r\nEND\r\n"))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBinarySetGet is a binary Set and GetK per op.
func BenchmarkBinarySetGet(b *testing.B) {
	c, r := benchConn(b)
	val := strings.Repeat("v", 32)
	req := pkts(breq(memcached.OpSet, "bench:key", setExtras(0, 0), val), breq(memcached.OpGetK, "bench:key", nil, ""))
	buf := make([]byte, 2*memcached.HeaderLen+4+len("bench:key")+len(val))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			b.Fatal(err)
		}
	}
}
