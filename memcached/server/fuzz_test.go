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

// trickleConn hands out its input one byte per Read.
type trickleConn struct{ memConn }

func (t *trickleConn) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return t.r.Read(p)
}

// TestFragmentedInput checks the parser's resumption: a conversation read
// one byte at a time gets the same replies as one read at once.
func TestFragmentedInput(t *testing.T) {
	convs := map[string][]byte{
		"text": []byte("set a 1 0 3\r\nabc\r\nget a b\r\nincr a 1\r\nset n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\n" +
			"gets n\r\nappend n 0 0 1\r\n7\r\ndelete a\r\ntouch n 10\r\nset b 0 0 2\r\nxyz\r\nversion\r\n" +
			"set big 0 0 2000000\r\n" + string(make([]byte, 2000002)) + "flush_all\r\nget n\r\nquit\r\n"),
		"binary": pkts(breq(memcached.OpSet, "k", setExtras(5, 0), "hello"), breq(memcached.OpGetK, "k", nil, ""),
			breq(memcached.OpAppendQ, "k", nil, "!"), breq(memcached.OpIncrement, "n", incrExtras(1, 7, 0), ""),
			breq(memcached.OpSet, "big", setExtras(0, 0), string(make([]byte, 1<<20))), breq(memcached.OpVerbosity, "", nil, ""),
			breq(memcached.OpNoop, "", nil, ""), breq(memcached.OpGet, "k", nil, ""), breq(memcached.OpStat, "settings", nil, ""),
			breq(memcached.OpQuit, "", nil, "")),
	}
	for name, in := range convs {
		t.Run(name, func(t *testing.T) {
			outputs := make([]string, 2)
			for i, trickle := range []bool{false, true} {
				s, err := New(Config{})
				if err != nil {
					t.Fatal(err)
				}
				var rec recordConn
				rec.r = bytes.NewReader(in)
				rec.trickle = trickle
				newConn(s, &rec).serve()
				s.Close()
				outputs[i] = normMasked(rec.out.Bytes(), name == "binary")
			}
			if outputs[0] != outputs[1] {
				t.Fatalf("replies differ:\nwhole:   %q\ntrickle: %q", outputs[0], outputs[1])
			}
			if len(outputs[0]) < 100 {
				t.Fatalf("suspiciously short output %q", outputs[0])
			}
		})
	}
}

// recordConn keeps what is written; with trickle set it reads one byte at
// a time.
type recordConn struct {
	memConn
	trickle bool
	out     bytes.Buffer
}

func (r *recordConn) Read(p []byte) (int, error) {
	if r.trickle && len(p) > 1 {
		p = p[:1]
	}
	return r.r.Read(p)
}

func (r *recordConn) Write(p []byte) (int, error) { return r.out.Write(p) }

func normMasked(b []byte, bin bool) string {
	if bin {
		return normBinary(b)
	}
	return normText(b)
}
