package server

import (
	"bytes"
	"net"
	"testing"
	"time"

	"luaserve/memcached"
)

// memConn is a net.Conn that reads a fixed input and counts what is written.
type memConn struct {
	r       *bytes.Reader
	written int
}

func (m *memConn) Read(p []byte) (int, error)       { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error)      { m.written += len(p); return len(p), nil }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConn feeds arbitrary bytes to a connection: it must never panic and
// its read buffer must stay proportional to the input, whatever lengths the
// requests announce.
func FuzzConn(f *testing.F) {
	seeds := []string{
		"set a 0 0 1\r\n1\r\nget a b\r\n",
		"set a 0 0 999999999999\r\nabc\r\n",
		"set a 0 0 1000000\r\nabc",
		"incr a 18446744073709551615\r\ngets a\r\ncas a 0 0 1 1\r\nx\r\n",
		"get " + key(300) + "\r\nflush_all 10\r\nstats\r\nstats settings\r\n",
		"GET / HTTP/1.1\r\n",
		string(pkts(breq(memcached.OpSet, "k", setExtras(1, 2), "v"), breq(memcached.OpGetK, "k", nil, ""),
			breq(memcached.OpIncrement, "n", incrExtras(1, 5, 0), ""), breq(memcached.OpStat, "", nil, ""))),
		string(pkts(breq(memcached.OpSet, "k", setExtras(0, 0), "v").withBody(0xffffffff))),
		string(pkts(breq(memcached.OpVerbosity, "", u32(1), ""), breq(0x30, "k", nil, "v").withBody(1<<30))),
		string(pkts(breq(memcached.OpSASLAuth, "PLAIN", nil, "\x00u\x00p"), breq(memcached.OpGet, "k", nil, "").withKeylen(60000))),
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, sasl bool) {
		cfg := Config{MaxBytes: 1 << 20}
		if sasl {
			cfg.SASLUser, cfg.SASLPassword = "u", "p"
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c := newConn(s, &memConn{r: bytes.NewReader(data)})
		c.serve()
		if limit := 2 * max(len(data), readBufSize); len(c.buf) > limit {
			t.Fatalf("read buffer grew to %d for %d bytes of input", len(c.buf), len(data))
		}
	})
}

// TestHotPathAllocs pins the allocations of the request paths that matter:
// gets allocate nothing, a set allocates its item and nothing else.
func TestHotPathAllocs(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mc := &memConn{r: bytes.NewReader(nil)}
	c := newConn(s, mc)
	run := func(req []byte) {
		c.r, c.w = 0, copy(c.buf, req)
		c.process()
		_ = c.flush()
	}
	run([]byte("set k 0 0 5\r\nhello\r\nset n 0 0 3\r\n100\r\n"))
	tests := []struct {
		name string
		req  []byte
		max  float64
	}{
		{"text get hit", []byte("get k\r\n"), 0},
		{"text gets miss", []byte("gets nope\r\n"), 0},
		{"text incr in place", []byte("incr n 0\r\n"), 0},
		{"text set", []byte("set k 0 0 5\r\nhello\r\n"), 2},
		{"binary get hit", pkts(breq(memcached.OpGetK, "k", nil, "")), 0},
		{"binary set", pkts(breq(memcached.OpSetQ, "k", setExtras(0, 0), "hello")), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.negotiated, c.binary = true, tt.req[0] == memcached.MagicRequest
			got := testing.AllocsPerRun(200, func() { run(tt.req) })
			if got > tt.max {
				t.Fatalf("%v allocs per request, want at most %v", got, tt.max)
			}
		})
	}
}
