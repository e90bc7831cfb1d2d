package memcached_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/internal/mctest"
	"luaserve/memcached"
	"luaserve/memcached/server"
)

var textOpts = &memcached.Options{Protocol: memcached.Text}

// textDo runs one command on mux with generous timeouts.
func textDo(t *testing.T, mux *memcached.Mux, cmd string) (*memcached.TextReply, error) {
	t.Helper()
	var r memcached.TextReply
	err := mux.DoText(context.Background(), []byte(cmd), &r, time.Second, 5*time.Second)
	return &r, err
}

// textBackend starts b and returns its address and a text pool and Mux on
// it.
func textBackend(t *testing.T, b backend) (string, *memcached.Pool, *memcached.Mux) {
	addr := b.start(t)
	pool := memcached.NewPool(addr, textOpts)
	t.Cleanup(func() { pool.Close() })
	return addr, pool, pool.Mux()
}

// Every data command's reply comes back verbatim, refusals included, and
// none of them — CLIENT_ERROR and SERVER_ERROR alike — costs the
// connection.
func TestMuxDoText(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr, pool, mux := textBackend(t, b)
			require.Same(t, mux, pool.Mux())
			_, err := textDo(t, mux, "get mt:warm\r\n")
			require.NoError(t, err)
			// Counted once the Mux has its connection: memcached's threads
			// may count the start-up probe late.
			before := mctest.TotalConnections(t, addr)
			big := strings.Repeat("x", memcached.DefaultItemSize+1)
			steps := []struct {
				cmd, line string
				value     string // "" with hit false: a miss
				hit       bool
				flags     uint32
			}{
				{"get mt:a\r\n", "END", "", false, 0},
				{"set mt:a 7 0 5\r\nhello\r\n", "STORED", "", false, 0},
				{"get mt:a\r\n", "END", "hello", true, 7},
				{"add mt:a 0 0 1\r\nx\r\n", "NOT_STORED", "", false, 0},
				{"replace mt:none 0 0 1\r\nx\r\n", "NOT_STORED", "", false, 0},
				{"append mt:a 0 0 4\r\n-end\r\n", "STORED", "", false, 0},
				{"prepend mt:a 0 0 6\r\nstart-\r\n", "STORED", "", false, 0},
				{"get mt:a\r\n", "END", "start-hello-end", true, 7},
				{"set mt:bin 0 0 10\r\na\r\nEND\r\n\x00z\r\n", "STORED", "", false, 0},
				{"get mt:bin\r\n", "END", "a\r\nEND\r\n\x00z", true, 0},
				{"set mt:e 0 0 0\r\n\r\n", "STORED", "", false, 0},
				{"get mt:e\r\n", "END", "", true, 0},
				{"set mt:n 0 0 2\r\n10\r\n", "STORED", "", false, 0},
				{"incr mt:n 5\r\n", "15", "", false, 0},
				{"decr mt:n 100\r\n", "0", "", false, 0},
				{"incr mt:none 1\r\n", "NOT_FOUND", "", false, 0},
				{"incr mt:a 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value", "", false, 0},
				{"set mt:big 0 0 " + strconv.Itoa(len(big)) + "\r\n" + big + "\r\n", "SERVER_ERROR object too large for cache", "", false, 0},
				{"get mt:big\r\n", "END", "", false, 0},
				{"touch mt:a 100\r\n", "TOUCHED", "", false, 0},
				{"touch mt:none 100\r\n", "NOT_FOUND", "", false, 0},
				{"cas mt:none 0 0 1 1\r\nx\r\n", "NOT_FOUND", "", false, 0},
				{"delete mt:n\r\n", "DELETED", "", false, 0},
				{"delete mt:n\r\n", "NOT_FOUND", "", false, 0},
			}
			for _, s := range steps {
				r, err := textDo(t, mux, s.cmd)
				require.NoError(t, err, s.cmd)
				assert.Equal(t, s.line, string(r.Line), s.cmd)
				assert.Equal(t, s.hit, r.Hit, s.cmd)
				if s.hit {
					assert.Equal(t, s.value, string(r.Value), s.cmd)
					assert.Equal(t, s.flags, r.Flags, s.cmd)
				}
			}
			// gets and cas: the unique is the item's.
			r, err := textDo(t, mux, "gets mt:a\r\n")
			require.NoError(t, err)
			require.True(t, r.Hit)
			require.NotZero(t, r.CAS)
			cas := strconv.FormatUint(r.CAS, 10)
			r, err = textDo(t, mux, "cas mt:a 0 0 1 "+cas+"\r\ny\r\n")
			require.NoError(t, err)
			assert.Equal(t, "STORED", string(r.Line))
			r, err = textDo(t, mux, "cas mt:a 0 0 1 "+cas+"\r\nz\r\n")
			require.NoError(t, err)
			assert.Equal(t, "EXISTS", string(r.Line))
			// No new connection for any of it (the second stats read
			// counts itself).
			assert.Equal(t, 1, mctest.TotalConnections(t, addr)-before, "a refused command does not cost the connection")
		})
	}
}

// What DoText cannot prove well-formed is refused before anything is sent
// or dialed.
func TestMuxDoTextUnshareable(t *testing.T) {
	pool := memcached.NewPool(refusedAddr(t), textOpts)
	for _, cmd := range []string{
		"stats\r\n", "get a b\r\n", "set k 0 0 1 noreply\r\nv\r\n", "set k 0 0 2\r\nv\r\n",
		"get " + strings.Repeat("k", 251) + "\r\n", "set k x 0 1\r\nv\r\n", "incr k 1 noreply\r\n",
	} {
		_, err := textDo(t, pool.Mux(), cmd)
		assert.ErrorIs(t, err, memcached.ErrUnshareable, cmd)
		var de *memcached.DialError
		assert.False(t, errors.As(err, &de), "%q: dialed", cmd)
	}
	// The protocols do not mix.
	var resp memcached.Response
	err := pool.Mux().Do(context.Background(), &memcached.Request{Opcode: memcached.OpGet, Key: "k"}, &resp, time.Second, time.Second)
	assert.ErrorContains(t, err, "text protocol")
	_, err = textDo(t, memcached.NewPool(refusedAddr(t), nil).Mux(), "get k\r\n")
	assert.ErrorContains(t, err, "binary protocol")
}

func refusedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Many goroutines at once share the Mux's connections, each getting its
// own replies, whole.
func TestMuxDoTextConcurrentCallers(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr, pool, mux := textBackend(t, b)
			before := mctest.TotalConnections(t, addr)
			const workers, ops = 8, 200
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- func() error {
						var r memcached.TextReply
						var cmd []byte
						do := func(want string) error {
							if err := mux.DoText(context.Background(), cmd, &r, time.Second, 5*time.Second); err != nil {
								return err
							}
							if string(r.Line) != want {
								return fmt.Errorf("worker %d: %q answered %q, want %q", w, cmd, r.Line, want)
							}
							return nil
						}
						for i := range ops {
							key := fmt.Sprintf("mtc:%d:%d", w, i)
							val := []byte(strings.Repeat(strconv.Itoa(w), i%50) + key)
							cmd = memcached.AppendStorageCommand(cmd[:0], "set", key, uint32(w), 0, val, 0, false)
							if err := do("STORED"); err != nil {
								return err
							}
							cmd = memcached.AppendRetrievalCommand(cmd[:0], "get", key)
							if err := do("END"); err != nil {
								return err
							}
							if !r.Hit || !bytes.Equal(r.Value, val) || r.Flags != uint32(w) {
								return fmt.Errorf("worker %d op %d: got %q flags %d", w, i, r.Value, r.Flags)
							}
							cmd = memcached.AppendCounterCommand(cmd[:0], "incr", key, 1, false)
							if err := do("CLIENT_ERROR cannot increment or decrement non-numeric value"); err != nil {
								return err
							}
							cmd = memcached.AppendRetrievalCommand(cmd[:0], "get", key+":none")
							if err := do("END"); err != nil {
								return err
							}
							if r.Hit {
								return fmt.Errorf("worker %d op %d: a miss hit", w, i)
							}
						}
						return nil
					}()
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			opened := mctest.TotalConnections(t, addr) - before - 1
			assert.LessOrEqual(t, opened, memcached.DefaultConnsPerServer)
			assert.Zero(t, pool.Idle(), "the Mux keeps its connections")
		})
	}
}

func TestMuxDoTextFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		pool := memcached.NewPool(refusedAddr(t), textOpts)
		_, err := textDo(t, pool.Mux(), "get k\r\n")
		var de *memcached.DialError
		require.ErrorAs(t, err, &de)
		var errno syscall.Errno
		assert.ErrorAs(t, err, &errno)
	})
	t.Run("timeout", func(t *testing.T) {
		pool := memcached.NewPool(silentListener(t), textOpts)
		var r memcached.TextReply
		start := time.Now()
		err := pool.Mux().DoText(context.Background(), []byte("get k\r\n"), &r, time.Second, 100*time.Millisecond)
		require.ErrorIs(t, err, memcached.ErrTimeout)
		assert.Less(t, time.Since(start), time.Second)
	})
	t.Run("a short deadline does not wait behind a long one", func(t *testing.T) {
		pool := memcached.NewPool(silentListener(t), textOpts)
		mux := pool.Mux()
		long := make(chan error, 1)
		go func() {
			var r memcached.TextReply
			long <- mux.DoText(context.Background(), []byte("get a\r\n"), &r, time.Second, 700*time.Millisecond)
		}()
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		var r memcached.TextReply
		err := mux.DoText(context.Background(), []byte("get b\r\n"), &r, time.Second, 100*time.Millisecond)
		require.ErrorIs(t, err, memcached.ErrTimeout)
		assert.Less(t, time.Since(start), 500*time.Millisecond)
		select {
		case err := <-long:
			assert.ErrorIs(t, err, memcached.ErrTimeout, "at its own deadline")
			assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)
		case <-time.After(5 * time.Second):
			t.Fatal("the long call is still waiting")
		}
	})
	t.Run("server dies then refuses", func(t *testing.T) {
		s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
		require.NoError(t, err)
		pool := memcached.NewPool(s.Addr().String(), textOpts)
		mux := pool.Mux()
		_, err = textDo(t, mux, "get k\r\n")
		require.NoError(t, err)
		require.NoError(t, s.Close())
		_, err = textDo(t, mux, "get k\r\n")
		require.Error(t, err)
		var de *memcached.DialError
		assert.False(t, errors.As(err, &de), "the live connection failed, not a dial: %v", err)
		_, err = textDo(t, mux, "get k\r\n")
		require.ErrorAs(t, err, &de)
	})
	t.Run("value larger than the limit", func(t *testing.T) {
		addr := backends[0].start(t)
		pool := memcached.NewPool(addr, &memcached.Options{Protocol: memcached.Text, MaxValueSize: 100})
		t.Cleanup(func() { pool.Close() })
		mux := pool.Mux()
		_, err := textDo(t, mux, "set mt:large 0 0 101\r\n"+strings.Repeat("v", 101)+"\r\n")
		require.NoError(t, err, "the limit bounds replies, not requests")
		_, err = textDo(t, mux, "get mt:large\r\n")
		assert.ErrorIs(t, err, memcached.ErrValueTooLarge)
		assert.ErrorIs(t, err, memcached.ErrProtocol)
		// The stream was lost with it; the next call takes a new connection.
		r, err := textDo(t, mux, "set mt:small 0 0 3\r\nabc\r\n")
		require.NoError(t, err)
		assert.Equal(t, "STORED", string(r.Line))
	})
	t.Run("closed pool", func(t *testing.T) {
		pool := memcached.NewPool(backends[1].start(t), textOpts)
		pool.Close()
		_, err := textDo(t, pool.Mux(), "get k\r\n")
		assert.ErrorIs(t, err, memcached.ErrClosed)
	})
}

// scripted serves each accepted connection with answer, which gets the
// connection's reader and writer.
func scripted(t *testing.T, answer func(br *bufio.Reader, c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				answer(bufio.NewReader(c), c)
			}()
		}
	}()
	return l.Addr().String()
}

// readCommands reads n command lines (storage data blocks included).
func readCommands(br *bufio.Reader, n int) []string {
	var cmds []string
	for range n {
		line, err := br.ReadString('\n')
		if err != nil {
			return cmds
		}
		if f := strings.Fields(line); len(f) >= 5 && f[0] == "set" {
			size, _ := strconv.Atoi(f[4])
			br.Discard(size + 2) //nolint:errcheck // a short read ends the script anyway
		}
		cmds = append(cmds, strings.TrimSpace(line))
	}
	return cmds
}

// A reply read in full that leaves the stream out of step goes to its
// caller, as the library would read it; the calls pipelined behind it
// fail rather than take a reply that is not theirs.
func TestMuxDoTextOutOfStep(t *testing.T) {
	tests := []struct {
		name, first string // the reply to the first command to arrive
		cmd         string
		line        string
		hit         bool
	}{
		{"bare ERROR", "ERROR\r\n", "set k 0 0 1\r\nv\r\n", "ERROR", false},
		{"a line set never answers", "DELETED\r\n", "set k 0 0 1\r\nv\r\n", "DELETED", false},
		{"a second item for one key", "VALUE k 0 1\r\nx\r\nVALUE j 0 1\r\ny\r\nEND\r\n", "get k\r\n", "VALUE j 0 1", true},
		{"a line get never answers", "STORED\r\n", "get k\r\n", "STORED", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := scripted(t, func(br *bufio.Reader, c net.Conn) {
				if len(readCommands(br, 2)) == 2 {
					c.Write([]byte(tt.first + "STORED\r\nEND\r\n")) //nolint:errcheck
				}
				br.ReadByte() //nolint:errcheck // hold the connection until the client hangs up
			})
			pool := memcached.NewPool(addr, textOpts)
			t.Cleanup(func() { pool.Close() })
			mux := pool.Mux()
			type result struct {
				r   *memcached.TextReply
				err error
			}
			results := make(chan result, 2)
			for range 2 {
				go func() {
					var r memcached.TextReply
					err := mux.DoText(context.Background(), []byte(tt.cmd), &r, time.Second, 5*time.Second)
					results <- result{&r, err}
				}()
			}
			var got []result
			for range 2 {
				got = append(got, <-results)
			}
			if got[0].err != nil {
				got[0], got[1] = got[1], got[0]
			}
			require.NoError(t, got[0].err, "the first caller has its reply")
			assert.Equal(t, tt.line, string(got[0].r.Line))
			assert.Equal(t, tt.hit, got[0].r.Hit)
			if tt.hit {
				assert.Equal(t, "x", string(got[0].r.Value))
			}
			assert.ErrorIs(t, got[1].err, memcached.ErrProtocol, "the second caller's reply cannot be told")
		})
	}
}

// A caller that finds a dial in progress waits for it no longer than its
// own connect timeout allows.
func TestMuxDialWaitIsBoundedByTheCaller(t *testing.T) {
	pool := memcached.NewPool(mctest.FullBacklog(t).String(), &memcached.Options{Protocol: memcached.Text, ConnectTimeout: 10 * time.Second})
	mux := pool.Mux()
	slow := make(chan error, 1)
	go func() {
		_, err := mux.Lease(context.Background(), 1500*time.Millisecond)
		slow <- err
	}()
	time.Sleep(50 * time.Millisecond) // the slow dial is in progress
	start := time.Now()
	_, err := mux.Lease(context.Background(), 100*time.Millisecond)
	require.ErrorIs(t, err, memcached.ErrTimeout)
	var de *memcached.DialError
	assert.ErrorAs(t, err, &de)
	assert.Less(t, time.Since(start), time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var r memcached.TextReply
	err = mux.DoText(ctx, []byte("get k\r\n"), &r, time.Second, 5*time.Second)
	require.ErrorIs(t, err, memcached.ErrTimeout)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.ErrorIs(t, <-slow, memcached.ErrTimeout)
}

// Leases are handed out again as pooled connections are: most recently
// released first, counting the reuse, forgotten when idle too long or
// beyond the pool size; taking one costs no connection while the Mux has
// a live one.
func TestMuxLeases(t *testing.T) {
	addr := backends[1].start(t)
	pool := memcached.NewPool(addr, textOpts)
	t.Cleanup(func() { pool.Close() })
	mux := pool.Mux()
	ctx := context.Background()
	a, err := mux.Lease(ctx, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, pool.Idle(), "the connection dialed waits in the pool for its first user")
	_, err = textDo(t, mux, "get k\r\n")
	require.NoError(t, err)
	assert.Zero(t, pool.Idle(), "the Mux took it")
	before := mctest.TotalConnections(t, addr)
	b, err := mux.Lease(ctx, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, a.ReusedTimes())
	assert.Equal(t, 0, b.ReusedTimes())
	mux.Release(a, time.Minute, 10)
	mux.Release(b, time.Minute, 10)
	c, err := mux.Lease(ctx, time.Second)
	require.NoError(t, err)
	assert.Same(t, b, c, "the most recently released")
	assert.Equal(t, 1, c.ReusedTimes())
	mux.Release(c, time.Millisecond, 10)
	time.Sleep(10 * time.Millisecond)
	d, err := mux.Lease(ctx, time.Second)
	require.NoError(t, err)
	assert.Same(t, a, d, "the expired one is forgotten")
	assert.Equal(t, 1, d.ReusedTimes())
	var x [3]*memcached.Lease
	for i := range x {
		x[i], err = mux.Lease(ctx, time.Second)
		require.NoError(t, err)
		assert.Zero(t, x[i].ReusedTimes())
	}
	for _, l := range x {
		mux.Release(l, 0, 2)
	}
	e, _ := mux.Lease(ctx, time.Second)
	f, _ := mux.Lease(ctx, time.Second)
	g, _ := mux.Lease(ctx, time.Second)
	assert.Same(t, x[2], e)
	assert.Same(t, x[1], f)
	assert.NotSame(t, x[0], g, "beyond the pool size, the oldest are forgotten")
	assert.Zero(t, g.ReusedTimes())
	assert.Equal(t, 1, mctest.TotalConnections(t, addr)-before, "leases take no connection")

	_, err = memcached.NewPool(refusedAddr(t), textOpts).Mux().Lease(ctx, time.Second)
	var de *memcached.DialError
	assert.ErrorAs(t, err, &de)
	closed := memcached.NewPool(addr, textOpts)
	closed.Close()
	_, err = closed.Mux().Lease(ctx, time.Second)
	assert.ErrorIs(t, err, memcached.ErrClosed)
}

// The read route's get on the Mux allocates nothing (against a real
// memcached: the embedded server's allocations would count too).
func TestMuxDoTextAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	pool := memcached.NewPool(backends[0].start(t), textOpts)
	t.Cleanup(func() { pool.Close() })
	mux := pool.Mux()
	var r memcached.TextReply
	set := []byte("set alloc 0 0 100\r\n" + strings.Repeat("v", 100) + "\r\n")
	get := []byte("get alloc\r\n")
	ctx := context.Background()
	run := func() {
		if err := mux.DoText(ctx, set, &r, time.Second, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := mux.DoText(ctx, get, &r, time.Second, time.Second); err != nil || !r.Hit {
			t.Fatal(err, r.Hit)
		}
	}
	run()
	assert.Zero(t, testing.AllocsPerRun(200, run))
	l, err := mux.Lease(ctx, time.Second)
	require.NoError(t, err)
	assert.Zero(t, testing.AllocsPerRun(200, func() {
		mux.Release(l, time.Minute, 10)
		l, _ = mux.Lease(ctx, time.Second)
	}))
}

func BenchmarkMuxDoText(b *testing.B) {
	mux := embeddedMux(b, textOpts)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var r memcached.TextReply
		get := []byte("get bench\r\n")
		for pb.Next() {
			if err := mux.DoText(context.Background(), get, &r, time.Second, time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}
