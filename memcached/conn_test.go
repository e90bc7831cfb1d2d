package memcached_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/internal/mctest"
	"luaserve/memcached"
	"luaserve/memcached/server"
)

func dial(t *testing.T, addr string, opts *memcached.Options) *memcached.Conn {
	t.Helper()
	c, err := memcached.Dial(context.Background(), addr, opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func setReq(key, val string, op memcached.Opcode) *memcached.Request {
	return &memcached.Request{Opcode: op, Key: key, Value: []byte(val), Extras: memcached.AppendStoreExtras(nil, 0, 0)}
}

// TestConnBinaryPipeline drives a Conn the way resty.bmemcached's session
// does: many requests written before any response is read, quiet operations
// that answer only on failure, matched by opaque.
func TestConnBinaryPipeline(t *testing.T) {
	p := mctest.Real(t)
	c := dial(t, p.Addr, nil)

	// Ten quiet sets, one failing quiet add, quiet gets for a hit and a miss,
	// then a noop: only the add's failure, the hit and the noop answer.
	var addOpaque, hitOpaque uint32
	for i := 0; i < 10; i++ {
		req := setReq("pk"+strconv.Itoa(i), "v"+strconv.Itoa(i), memcached.OpSetQ)
		req.Opaque = c.NextOpaque()
		require.NoError(t, c.Send(req))
	}
	add := setReq("pk3", "x", memcached.OpAddQ)
	add.Opaque = c.NextOpaque()
	addOpaque = add.Opaque
	require.NoError(t, c.Send(add))
	hit := &memcached.Request{Opcode: memcached.OpGetKQ, Key: "pk7", Opaque: c.NextOpaque()}
	hitOpaque = hit.Opaque
	require.NoError(t, c.Send(hit))
	require.NoError(t, c.Send(&memcached.Request{Opcode: memcached.OpGetKQ, Key: "nope", Opaque: c.NextOpaque()}))
	noop := &memcached.Request{Opcode: memcached.OpNoop, Opaque: c.NextOpaque()}
	require.NoError(t, c.Send(noop))
	require.NoError(t, c.Flush())

	var resp memcached.Response
	require.NoError(t, c.Receive(&resp))
	assert.Equal(t, addOpaque, resp.Opaque)
	assert.Equal(t, memcached.OpAddQ, resp.Opcode)
	assert.Equal(t, memcached.StatusKeyExists, resp.Status)
	assert.Equal(t, "Data exists for key.", string(resp.Value), "the server's text is kept")
	assert.ErrorIs(t, resp.Err(), memcached.ErrNotStored)

	require.NoError(t, c.Receive(&resp))
	assert.Equal(t, hitOpaque, resp.Opaque)
	assert.Equal(t, "pk7", string(resp.Key))
	assert.Equal(t, "v7", string(resp.Value))
	assert.NotZero(t, resp.CAS)

	require.NoError(t, c.Receive(&resp))
	assert.Equal(t, noop.Opaque, resp.Opaque)
	assert.Equal(t, memcached.OpNoop, resp.Opcode)
	assert.Zero(t, c.Buffered())
	assert.False(t, c.Broken())

	// The other quiet reads: GetQ, GATQ, GATKQ answer hits only; quiet
	// deletes, counters, appends and flush answer failures only.
	ex := memcached.AppendExpiryExtras(nil, 100)
	quiet := []*memcached.Request{
		{Opcode: memcached.OpGetQ, Key: "pk1"},
		{Opcode: memcached.OpGetQ, Key: "nope"},
		{Opcode: memcached.OpGATQ, Key: "pk2", Extras: ex},
		{Opcode: memcached.OpGATKQ, Key: "pk3", Extras: ex},
		{Opcode: memcached.OpGATKQ, Key: "nope", Extras: ex},
		{Opcode: memcached.OpDeleteQ, Key: "pk4"},
		{Opcode: memcached.OpDeleteQ, Key: "pk4"},
		{Opcode: memcached.OpIncrementQ, Key: "pk5", Extras: memcached.AppendCounterExtras(nil, 1, 0, 0)},
		{Opcode: memcached.OpAppendQ, Key: "pk6", Value: []byte("+")},
		{Opcode: memcached.OpPrependQ, Key: "nope", Value: []byte("+")},
		{Opcode: memcached.OpReplaceQ, Key: "pk6", Value: []byte("r"), Extras: memcached.AppendStoreExtras(nil, 0, 0)},
		{Opcode: memcached.OpNoop},
	}
	for _, q := range quiet {
		q.Opaque = c.NextOpaque()
		require.NoError(t, c.Send(q))
	}
	want := []struct {
		i      int
		status memcached.Status
		key    string
		value  string
	}{
		{0, memcached.StatusNoError, "", "v1"},
		{2, memcached.StatusNoError, "", "v2"},
		{3, memcached.StatusNoError, "pk3", "v3"},
		{6, memcached.StatusKeyNotFound, "", "Not found"},
		{7, memcached.StatusNonNumeric, "", "Non-numeric server-side value for incr or decr"},
		{9, memcached.StatusItemNotStored, "", "Not stored."},
		{11, memcached.StatusNoError, "", ""},
	}
	for _, w := range want {
		require.NoError(t, c.Receive(&resp))
		assert.Equal(t, quiet[w.i].Opaque, resp.Opaque, "reply to request %d (%s)", w.i, quiet[w.i].Opcode)
		assert.Equal(t, quiet[w.i].Opcode, resp.Opcode)
		assert.Equal(t, w.status, resp.Status, "%s", resp.Status)
		assert.Equal(t, w.key, string(resp.Key))
		assert.Equal(t, w.value, string(resp.Value))
	}
	var g memcached.Response
	require.NoError(t, c.RoundTrip(&memcached.Request{Opcode: memcached.OpGet, Key: "pk6"}, &g))
	assert.Equal(t, "r", string(g.Value), "quiet append then quiet replace both applied")
	require.NoError(t, c.Send(&memcached.Request{Opcode: memcached.OpFlushQ}))
	require.NoError(t, c.RoundTrip(&memcached.Request{Opcode: memcached.OpGet, Key: "pk1"}, &g))
	assert.Equal(t, memcached.StatusKeyNotFound, g.Status, "the quiet flush answered nothing and flushed")
}

// TestConnBinaryOpcodes runs each non-quiet opcode once and checks the reply.
func TestConnBinaryOpcodes(t *testing.T) {
	p := mctest.Real(t)
	c := dial(t, p.Addr, nil)
	ex := func(b []byte) []byte { return b }
	tests := []struct {
		req    memcached.Request
		status memcached.Status
		value  string
		key    string
	}{
		{memcached.Request{Opcode: memcached.OpSet, Key: "a", Value: []byte("1"), Extras: memcached.AppendStoreExtras(nil, 3, 0)}, memcached.StatusNoError, "", ""},
		{memcached.Request{Opcode: memcached.OpGet, Key: "a"}, memcached.StatusNoError, "1", ""},
		{memcached.Request{Opcode: memcached.OpGetK, Key: "a"}, memcached.StatusNoError, "1", "a"},
		{memcached.Request{Opcode: memcached.OpAdd, Key: "a", Value: []byte("2"), Extras: memcached.AppendStoreExtras(nil, 0, 0)}, memcached.StatusKeyExists, "Data exists for key.", ""},
		{memcached.Request{Opcode: memcached.OpReplace, Key: "zz", Value: []byte("2"), Extras: memcached.AppendStoreExtras(nil, 0, 0)}, memcached.StatusKeyNotFound, "Not found", ""},
		{memcached.Request{Opcode: memcached.OpAppend, Key: "a", Value: []byte("0")}, memcached.StatusNoError, "", ""},
		{memcached.Request{Opcode: memcached.OpPrepend, Key: "a", Value: []byte("9")}, memcached.StatusNoError, "", ""},
		{memcached.Request{Opcode: memcached.OpIncrement, Key: "a", Extras: memcached.AppendCounterExtras(nil, 5, 0, 0)}, memcached.StatusNoError, "\x00\x00\x00\x00\x00\x00\x03\x93", ""}, // 910+5
		{memcached.Request{Opcode: memcached.OpDecrement, Key: "a", Extras: memcached.AppendCounterExtras(nil, 1000, 0, 0)}, memcached.StatusNoError, "\x00\x00\x00\x00\x00\x00\x00\x00", ""},
		{memcached.Request{Opcode: memcached.OpIncrement, Key: "new", Extras: memcached.AppendCounterExtras(nil, 1, 40, 0)}, memcached.StatusNoError, "\x00\x00\x00\x00\x00\x00\x00\x28", ""},
		{memcached.Request{Opcode: memcached.OpIncrement, Key: "none", Extras: memcached.AppendCounterExtras(nil, 1, 0, memcached.NoCreate)}, memcached.StatusKeyNotFound, "Not found", ""},
		{memcached.Request{Opcode: memcached.OpTouch, Key: "a", Extras: memcached.AppendExpiryExtras(nil, 100)}, memcached.StatusNoError, "", ""},
		{memcached.Request{Opcode: memcached.OpGAT, Key: "a", Extras: memcached.AppendExpiryExtras(nil, 100)}, memcached.StatusNoError, "0  ", ""}, // memcached keeps the length: "915" → "0  "
		{memcached.Request{Opcode: memcached.OpGATK, Key: "a", Extras: memcached.AppendExpiryExtras(nil, 100)}, memcached.StatusNoError, "0  ", "a"},
		{memcached.Request{Opcode: memcached.OpDelete, Key: "a"}, memcached.StatusNoError, "", ""},
		{memcached.Request{Opcode: memcached.OpDelete, Key: "a"}, memcached.StatusKeyNotFound, "Not found", ""},
		{memcached.Request{Opcode: memcached.OpNoop}, memcached.StatusNoError, "", ""},
		{memcached.Request{Opcode: memcached.OpFlush, Extras: ex(nil)}, memcached.StatusNoError, "", ""},
		{memcached.Request{Opcode: memcached.OpGet, Key: "new"}, memcached.StatusKeyNotFound, "Not found", ""},
		{memcached.Request{Opcode: memcached.Opcode(0x50)}, memcached.StatusUnknownCommand, "Unknown command", ""},
	}
	var resp memcached.Response
	for _, tt := range tests {
		t.Run(tt.req.Opcode.String()+"_"+tt.req.Key, func(t *testing.T) {
			require.NoError(t, c.RoundTrip(&tt.req, &resp))
			assert.Equal(t, tt.status, resp.Status, "%s", resp.Status)
			assert.Equal(t, tt.req.Opcode, resp.Opcode)
			if tt.value != "" || resp.Status == memcached.StatusNoError {
				assert.Equal(t, tt.value, string(resp.Value))
			}
			assert.Equal(t, tt.key, string(resp.Key))
		})
	}
	ver := memcached.Request{Opcode: memcached.OpVersion}
	require.NoError(t, c.RoundTrip(&ver, &resp))
	assert.Regexp(t, `^1\.\d+\.\d+`, string(resp.Value))

	st, err := c.Stats("")
	require.NoError(t, err)
	assert.Equal(t, string(resp.Value), st["version"], "every stat packet is collected up to the empty key")
	st, err = c.Stats("settings")
	require.NoError(t, err)
	assert.NotEmpty(t, st["maxconns"])

	list := memcached.Request{Opcode: memcached.OpSASLList}
	require.NoError(t, c.RoundTrip(&list, &resp))
	assert.Equal(t, memcached.StatusUnknownCommand, resp.Status, "SASL is not enabled on this server")

	quit := memcached.Request{Opcode: memcached.OpQuit}
	require.NoError(t, c.RoundTrip(&quit, &resp))
	assert.Equal(t, memcached.OpQuit, resp.Opcode)
	err = c.Receive(&resp)
	assert.ErrorIs(t, err, io.EOF)
	assert.True(t, c.Broken())
}

// TestConnTextPipeline drives a Conn the way resty.memcached does: commands
// written back to back, replies read verbatim.
func TestConnTextPipeline(t *testing.T) {
	p := mctest.Real(t)
	c := dial(t, p.Addr, &memcached.Options{Protocol: memcached.Text})
	var b []byte
	b = memcached.AppendStorageCommand(b, "set", "dog", 3, 0, []byte("32"), 0, false)
	b = memcached.AppendStorageCommand(b, "add", "dog", 0, 0, []byte("x"), 0, false)
	b = memcached.AppendStorageCommand(b, "set", "cat", 0, 0, []byte("quiet"), 0, true)
	b = memcached.AppendRetrievalCommand(b, "gets", "dog", "cat", "none")
	b = memcached.AppendCounterCommand(b, "incr", "dog", 10, false)
	b = memcached.AppendCounterCommand(b, "incr", "cat", 1, false)
	b = memcached.AppendTouchCommand(b, "dog", 10, false)
	b = memcached.AppendGATCommand(b, "gat", 10, "dog")
	b = memcached.AppendDeleteCommand(b, "dog", false)
	b = memcached.AppendDeleteCommand(b, "dog", false)
	b = memcached.AppendWordsCommand(b, "bogus")
	b = memcached.AppendVerbosityCommand(b, 1, false)
	b = memcached.AppendWordsCommand(b, "version")
	b = memcached.AppendFlushAllCommand(b, 0, false)
	_, err := c.Write(b)
	require.NoError(t, err)
	require.NoError(t, c.Flush())

	line := func() string {
		l, err := c.ReadLine()
		require.NoError(t, err)
		return string(l)
	}
	assert.Equal(t, "STORED", line())
	assert.Equal(t, "NOT_STORED", line())
	var v memcached.TextValue
	ok, err := c.ReadValue(&v)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "dog", string(v.Key))
	assert.Equal(t, "32", string(v.Value))
	assert.EqualValues(t, 3, v.Flags)
	assert.True(t, v.HasCAS)
	ok, err = c.ReadValue(&v)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "quiet", string(v.Value))
	ok, err = c.ReadValue(&v)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, "42", line())
	assert.Equal(t, "CLIENT_ERROR cannot increment or decrement non-numeric value", line())
	assert.Equal(t, "TOUCHED", line())
	ok, err = c.ReadValue(&v)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = c.ReadValue(&v)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, "DELETED", line())
	assert.Equal(t, "NOT_FOUND", line())
	assert.Equal(t, "ERROR", line())
	assert.Equal(t, "OK", line())
	assert.Regexp(t, `^VERSION 1\.`, line())
	assert.Equal(t, "OK", line())
	assert.False(t, c.Broken(), "reading reply lines verbatim never breaks the connection")

	_, err = c.Write(memcached.AppendWordsCommand(nil, "stats"))
	require.NoError(t, err)
	n := 0
	for {
		l := line()
		if memcached.IsEnd([]byte(l)) {
			break
		}
		_, _, ok := memcached.ParseStatLine([]byte(l))
		require.True(t, ok, l)
		n++
		require.Less(t, n, 1000)
	}
	assert.Greater(t, n, 10)

	_, err = c.Write(memcached.AppendWordsCommand(nil, "quit"))
	require.NoError(t, err)
	_, err = c.ReadLine()
	assert.ErrorIs(t, err, io.EOF, "quit closes without a reply")
	assert.True(t, c.Broken())
}

// silentListener accepts connections and never answers.
func silentListener(t *testing.T) string {
	t.Helper()
	addr, _ := countingSilentListener(t)
	return addr
}

// countingSilentListener is silentListener with the count of the
// connections it accepted.
func countingSilentListener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	var conns []net.Conn
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(done)
				return
			}
			accepted.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), &accepted
}

func TestTimeoutsAgainstSilentServer(t *testing.T) {
	addr := silentListener(t)
	t.Run("conn read", func(t *testing.T) {
		c := dial(t, addr, &memcached.Options{ReadTimeout: 100 * time.Millisecond})
		start := time.Now()
		var resp memcached.Response
		err := c.RoundTrip(&memcached.Request{Opcode: memcached.OpGet, Key: "k"}, &resp)
		assert.ErrorIs(t, err, memcached.ErrTimeout)
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.True(t, c.Broken(), "a timed-out connection is never reused")
		assert.False(t, memcached.Resumable(err))
		_, err = c.ReadLine()
		assert.ErrorIs(t, err, memcached.ErrClosed)
	})
	t.Run("conn text read", func(t *testing.T) {
		c := dial(t, addr, &memcached.Options{Protocol: memcached.Text, ReadTimeout: 100 * time.Millisecond})
		_, err := c.Write([]byte("get k\r\n"))
		require.NoError(t, err)
		_, err = c.ReadLine()
		assert.ErrorIs(t, err, memcached.ErrTimeout)
	})
	for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
		t.Run("client "+proto.String(), func(t *testing.T) {
			c, err := memcached.New(memcached.Config{Servers: []string{addr}, Protocol: proto,
				SendTimeout: 50 * time.Millisecond, ReadTimeout: 100 * time.Millisecond})
			require.NoError(t, err)
			defer c.Close()
			start := time.Now()
			_, err = c.Get("k")
			assert.ErrorIs(t, err, memcached.ErrTimeout)
			assert.Less(t, time.Since(start), 2*time.Second)
		})
	}
	t.Run("connect cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := memcached.Dial(ctx, addr, nil)
		assert.Error(t, err)
	})
}

// TestPool covers reuse counts, idle expiry, dropping broken connections and
// the pool size bound.
func TestPool(t *testing.T) {
	p := mctest.Real(t)
	ctx := context.Background()
	ping := func(t *testing.T, c *memcached.Conn) error {
		var resp memcached.Response
		return c.RoundTrip(&memcached.Request{Opcode: memcached.OpNoop}, &resp)
	}

	t.Run("reuse counter", func(t *testing.T) {
		pool := memcached.NewPool(p.Addr, nil)
		defer pool.Close()
		c, err := pool.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, 0, c.ReusedTimes())
		for want := 1; want <= 3; want++ {
			require.NoError(t, ping(t, c))
			pool.Put(c, time.Minute, 10)
			again, err := pool.Get(ctx)
			require.NoError(t, err)
			assert.Same(t, c, again)
			assert.Equal(t, want, again.ReusedTimes())
		}
		c.Close()
	})
	t.Run("idle expiry", func(t *testing.T) {
		pool := memcached.NewPool(p.Addr, nil)
		defer pool.Close()
		c, err := pool.Get(ctx)
		require.NoError(t, err)
		pool.Put(c, 20*time.Millisecond, 10)
		assert.Equal(t, 1, pool.Idle())
		time.Sleep(50 * time.Millisecond)
		fresh, err := pool.Get(ctx)
		require.NoError(t, err)
		assert.NotSame(t, c, fresh)
		assert.Equal(t, 0, fresh.ReusedTimes())
		assert.True(t, c.Broken(), "the expired connection was closed")
		pool.Put(fresh, 10*time.Millisecond, 10)
		time.Sleep(30 * time.Millisecond)
		pool.Prune()
		assert.Equal(t, 0, pool.Idle())
	})
	t.Run("broken connection dropped", func(t *testing.T) {
		pool := memcached.NewPool(silentListener(t), &memcached.Options{ReadTimeout: 30 * time.Millisecond})
		defer pool.Close()
		c, err := pool.Get(ctx)
		require.NoError(t, err)
		assert.ErrorIs(t, ping(t, c), memcached.ErrTimeout)
		pool.Put(c, time.Minute, 10)
		assert.Equal(t, 0, pool.Idle())
	})
	t.Run("unread responses dropped", func(t *testing.T) {
		pool := memcached.NewPool(p.Addr, nil)
		defer pool.Close()
		c, err := pool.Get(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Send(&memcached.Request{Opcode: memcached.OpNoop, Opaque: 1}))
		require.NoError(t, c.Send(&memcached.Request{Opcode: memcached.OpNoop, Opaque: 2}))
		var resp memcached.Response
		require.NoError(t, c.Receive(&resp))
		time.Sleep(50 * time.Millisecond) // let the second reply arrive
		pool.Put(c, time.Minute, 10)
		assert.Equal(t, 0, pool.Idle(), "one reply is still unread")
		assert.True(t, c.Broken())
	})
	t.Run("connection closed by the server dropped", func(t *testing.T) {
		pool := memcached.NewPool(p.Addr, nil)
		defer pool.Close()
		c, err := pool.Get(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Send(&memcached.Request{Opcode: memcached.OpQuitQ}))
		require.NoError(t, c.Flush())
		time.Sleep(50 * time.Millisecond)
		pool.Put(c, time.Minute, 10)
		assert.Equal(t, 0, pool.Idle(), "EOF seen while polling")
	})
	t.Run("miss keeps the connection", func(t *testing.T) {
		pool := memcached.NewPool(p.Addr, nil)
		defer pool.Close()
		c, err := pool.Get(ctx)
		require.NoError(t, err)
		var resp memcached.Response
		require.NoError(t, c.RoundTrip(&memcached.Request{Opcode: memcached.OpGet, Key: "absent"}, &resp))
		assert.ErrorIs(t, resp.Err(), memcached.ErrCacheMiss)
		pool.Put(c, time.Minute, 10)
		assert.Equal(t, 1, pool.Idle())
	})
	t.Run("size bound", func(t *testing.T) {
		pool := memcached.NewPool(p.Addr, nil)
		defer pool.Close()
		var conns []*memcached.Conn
		for i := 0; i < 5; i++ {
			c, err := pool.Get(ctx)
			require.NoError(t, err)
			conns = append(conns, c)
		}
		for _, c := range conns {
			pool.Put(c, time.Minute, 3)
		}
		assert.Equal(t, 3, pool.Idle())
		assert.True(t, conns[0].Broken(), "the oldest idle connections are closed first")
		assert.True(t, conns[1].Broken())
		assert.False(t, conns[4].Broken())
		got, err := pool.Get(ctx)
		require.NoError(t, err)
		assert.Same(t, conns[4], got, "the most recently returned is handed out first")
	})
	t.Run("closed pool", func(t *testing.T) {
		pool := memcached.NewPool(p.Addr, nil)
		c, err := pool.Get(ctx)
		require.NoError(t, err)
		require.NoError(t, pool.Close())
		pool.Put(c, time.Minute, 10)
		assert.True(t, c.Broken())
		_, err = pool.Get(ctx)
		assert.ErrorIs(t, err, memcached.ErrClosed)
	})
	t.Run("foreign connection closed", func(t *testing.T) {
		a := memcached.NewPool(p.Addr, nil)
		b := memcached.NewPool(p.Addr, nil)
		defer a.Close()
		defer b.Close()
		c, err := a.Get(ctx)
		require.NoError(t, err)
		b.Put(c, time.Minute, 10)
		assert.Equal(t, 0, b.Idle())
		assert.True(t, c.Broken())
	})
	t.Run("registry", func(t *testing.T) {
		var ps memcached.Pools
		defer ps.Close()
		a := ps.Pool(p.Addr+"/bucket", p.Addr, nil)
		assert.Same(t, a, ps.Pool(p.Addr+"/bucket", "ignored:1", nil))
		assert.NotSame(t, a, ps.Pool(p.Addr, p.Addr, nil))
		assert.Equal(t, p.Addr, a.Addr())
	})
}

func TestUnixSocket(t *testing.T) {
	if _, err := os.Stat(mctest.Binary); err != nil {
		t.Skipf("%s not installed", mctest.Binary)
	}
	// memcached runs as nobody, so the socket's directory must be open to it.
	dir, err := os.MkdirTemp("", "mcsock")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	sock := filepath.Join(dir, "mc.sock")
	args := []string{"-s", sock, "-a", "0777"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(mctest.Binary, args...)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "memcached did not open %s", sock)
		time.Sleep(20 * time.Millisecond)
	}
	c := dial(t, sock, nil)
	var resp memcached.Response
	require.NoError(t, c.RoundTrip(&memcached.Request{Opcode: memcached.OpVersion}, &resp))
	assert.NotEmpty(t, resp.Value)

	cl, err := memcached.New(memcached.Config{Servers: []string{sock}})
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.Set(&memcached.Item{Key: "u", Value: []byte("nix")}))
	it, err := cl.Get("u")
	require.NoError(t, err)
	assert.Equal(t, "nix", string(it.Value))
}

// fakeSASLServer answers one SASL PLAIN auth (accepting only user/secret)
// and then Noops, to check what the client puts on the wire.
func fakeSASLServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(nc)
				authed := false
				for {
					hdr := make([]byte, memcached.HeaderLen)
					if _, err := io.ReadFull(br, hdr); err != nil {
						return
					}
					h := memcached.ParseHeader(hdr)
					body := make([]byte, h.BodyLen)
					if _, err := io.ReadFull(br, body); err != nil {
						return
					}
					out := memcached.Header{Magic: memcached.MagicResponse, Opcode: h.Opcode, Opaque: h.Opaque}
					var val []byte
					switch {
					case h.Opcode == memcached.OpSASLAuth:
						key := string(body[h.ExtrasLen : int(h.ExtrasLen)+int(h.KeyLen)])
						if key == "PLAIN" && string(body[int(h.ExtrasLen)+int(h.KeyLen):]) == "\x00user\x00secret" {
							authed, val = true, []byte("Authenticated")
						} else {
							out.Status, val = memcached.StatusAuthError, []byte("Auth failure")
						}
					case !authed:
						out.Status, val = memcached.StatusAuthError, []byte("Auth failure")
					}
					out.BodyLen = uint32(len(val))
					if _, err := nc.Write(append(memcached.AppendHeader(nil, &out), val...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

func TestSASLPlain(t *testing.T) {
	addr := fakeSASLServer(t)
	c := dial(t, addr, &memcached.Options{Username: "user", Password: "secret"})
	var resp memcached.Response
	require.NoError(t, c.RoundTrip(&memcached.Request{Opcode: memcached.OpNoop}, &resp))
	assert.Equal(t, memcached.StatusNoError, resp.Status)

	_, err := memcached.Dial(context.Background(), addr, &memcached.Options{Username: "user", Password: "wrong"})
	assert.ErrorIs(t, err, memcached.ErrAuth)
	var se *memcached.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "Auth failure", se.Body)

	_, err = memcached.Dial(context.Background(), addr, &memcached.Options{Username: "user", Protocol: memcached.Text})
	assert.ErrorContains(t, err, "SASL needs the binary protocol")

	pool := memcached.NewPool(addr, &memcached.Options{Username: "user", Password: "secret"})
	defer pool.Close()
	pc, err := pool.Get(context.Background())
	require.NoError(t, err, "each new pooled connection authenticates")
	require.NoError(t, pc.RoundTrip(&memcached.Request{Opcode: memcached.OpNoop}, &resp))
	assert.Equal(t, memcached.StatusNoError, resp.Status)
	pc.Close()

	cl, err := memcached.New(memcached.Config{Servers: []string{addr}, Username: "user", Password: "wrong"})
	require.NoError(t, err)
	defer cl.Close()
	_, err = cl.Get("k")
	assert.ErrorIs(t, err, memcached.ErrAuth)
}

// TestTLS runs against memcached's own TLS listener (-Z) with a throwaway
// certificate.
func TestTLS(t *testing.T) {
	if _, err := os.Stat(mctest.Binary); err != nil {
		t.Skipf("%s not installed", mctest.Binary)
	}
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o644))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o644))
	p := mctest.Real(t, "-Z", "-o", fmt.Sprintf("ssl_chain_cert=%s,ssl_key=%s", certFile, keyFile))
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certPEM))
	cfg := &tls.Config{RootCAs: pool}
	for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
		t.Run(proto.String(), func(t *testing.T) {
			cl, err := memcached.New(memcached.Config{Servers: []string{p.Addr}, TLS: cfg, Protocol: proto})
			require.NoError(t, err)
			defer cl.Close()
			require.NoError(t, cl.Set(&memcached.Item{Key: "tls", Value: []byte("secure")}))
			it, err := cl.Get("tls")
			require.NoError(t, err)
			assert.Equal(t, "secure", string(it.Value))
		})
	}
	_, err := memcached.Dial(context.Background(), p.Addr, &memcached.Options{TLS: &tls.Config{}})
	assert.Error(t, err, "an unknown certificate authority is refused")
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestSASLPlainEmbedded authenticates against the embedded server, which
// requires SASL PLAIN when configured with credentials, as memcached -S does.
func TestSASLPlainEmbedded(t *testing.T) {
	s, err := server.Start(server.Config{Addr: "127.0.0.1:0", SASLUser: "user", SASLPassword: "secret"})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	addr := s.Addr().String()

	c, err := memcached.New(memcached.Config{Servers: []string{addr}, Username: "user", Password: "secret"})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Set(&memcached.Item{Key: "sasl", Value: []byte("ok")}))
	it, err := c.Get("sasl")
	require.NoError(t, err)
	assert.Equal(t, "ok", string(it.Value))

	_, err = memcached.Dial(context.Background(), addr, &memcached.Options{Username: "user", Password: "nope"})
	assert.ErrorIs(t, err, memcached.ErrAuth)

	plain := dial(t, addr, nil)
	var resp memcached.Response
	require.NoError(t, plain.RoundTrip(&memcached.Request{Opcode: memcached.OpSASLList}, &resp))
	assert.Equal(t, memcached.StatusNoError, resp.Status)
	assert.Contains(t, string(resp.Value), "PLAIN")
}
