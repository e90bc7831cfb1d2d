package memcached_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/memcached"
	"luaserve/memcached/server"
)

// A Mux answers each caller its own response, verbatim: status, CAS, key,
// extras and value, whatever else is pipelined beside it.
func TestMuxDo(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr := b.start(t)
			pool := memcached.NewPool(addr, nil)
			t.Cleanup(func() { pool.Close() })
			mux := pool.Mux()
			require.Same(t, mux, pool.Mux(), "one Mux per Pool")
			ctx := context.Background()
			ex := func(flags uint32) []byte { return memcached.AppendStoreExtras(nil, flags, 0) }
			tests := []struct {
				name   string
				req    memcached.Request
				status memcached.Status
				key    string
				value  string
				flags  uint32
			}{
				{"set", memcached.Request{Opcode: memcached.OpSet, Key: "mux:a", Value: []byte("va"),
					Extras: ex(42)}, memcached.StatusNoError, "", "", 0},
				{"getK", memcached.Request{Opcode: memcached.OpGetK, Key: "mux:a"}, memcached.StatusNoError, "mux:a", "va", 42},
				{"add exists", memcached.Request{Opcode: memcached.OpAdd, Key: "mux:a", Value: []byte("x"),
					Extras: ex(0)}, memcached.StatusKeyExists, "", "Data exists for key.", 0},
				{"get miss", memcached.Request{Opcode: memcached.OpGet, Key: "mux:none"}, memcached.StatusKeyNotFound, "", "Not found", 0},
				{"noop", memcached.Request{Opcode: memcached.OpNoop}, memcached.StatusNoError, "", "", 0},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var resp memcached.Response
					req := tt.req
					require.NoError(t, mux.Do(ctx, &req, &resp, time.Second, time.Second))
					assert.Equal(t, tt.req.Opcode, resp.Opcode)
					assert.Equal(t, req.Opaque, resp.Opaque)
					assert.Equal(t, tt.status, resp.Status)
					assert.Equal(t, tt.key, string(resp.Key))
					assert.Equal(t, tt.value, string(resp.Value))
					assert.Equal(t, tt.flags, resp.Flags())
				})
			}
			var resp memcached.Response
			err := mux.Do(ctx, &memcached.Request{Opcode: memcached.OpSetQ, Key: "k"}, &resp, time.Second, time.Second)
			assert.ErrorContains(t, err, "expects no single response")
		})
	}
}

func TestMuxConcurrentCallers(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr := b.start(t)
			pool := memcached.NewPool(addr, nil)
			t.Cleanup(func() { pool.Close() })
			mux := pool.Mux()
			const workers, ops = 8, 200
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var resp memcached.Response
					var ex [8]byte
					for i := range ops {
						key := fmt.Sprintf("muxc:%d:%d", w, i)
						val := fmt.Sprintf("%d-%d-%s", w, i, key)
						set := memcached.Request{Opcode: memcached.OpSet, Key: key, Value: []byte(val),
							Extras: memcached.AppendStoreExtras(ex[:0], uint32(w), 0)}
						if err := mux.Do(context.Background(), &set, &resp, time.Second, 5*time.Second); err != nil {
							errs <- err
							return
						}
						get := memcached.Request{Opcode: memcached.OpGet, Key: key}
						if err := mux.Do(context.Background(), &get, &resp, time.Second, 5*time.Second); err != nil {
							errs <- err
							return
						}
						if string(resp.Value) != val || resp.Flags() != uint32(w) {
							errs <- fmt.Errorf("worker %d op %d: got %q flags %d", w, i, resp.Value, resp.Flags())
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			assert.Zero(t, pool.Idle(), "the Mux keeps its connections")
		})
	}
}

func TestMuxFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		pool := memcached.NewPool(addr, nil)
		var resp memcached.Response
		err = pool.Mux().Do(context.Background(), &memcached.Request{Opcode: memcached.OpGet, Key: "k"}, &resp, time.Second, time.Second)
		var de *memcached.DialError
		require.ErrorAs(t, err, &de)
		// The text is the dial error's, as Pool.Get gives it.
		_, getErr := pool.Get(context.Background())
		assert.Equal(t, getErr.Error(), err.Error())
	})
	t.Run("timeout", func(t *testing.T) {
		pool := memcached.NewPool(silentListener(t), nil)
		var resp memcached.Response
		start := time.Now()
		err := pool.Mux().Do(context.Background(), &memcached.Request{Opcode: memcached.OpGet, Key: "k"}, &resp, time.Second, 100*time.Millisecond)
		require.ErrorIs(t, err, memcached.ErrTimeout)
		assert.Less(t, time.Since(start), time.Second)
	})
	t.Run("a short deadline does not wait behind a long one", func(t *testing.T) {
		pool := memcached.NewPool(silentListener(t), nil)
		mux := pool.Mux()
		long := make(chan error, 1)
		go func() {
			var resp memcached.Response
			long <- mux.Do(context.Background(), &memcached.Request{Opcode: memcached.OpGet, Key: "a"}, &resp, time.Second, 700*time.Millisecond)
		}()
		time.Sleep(50 * time.Millisecond) // the long call is at the head
		var resp memcached.Response
		start := time.Now()
		err := mux.Do(context.Background(), &memcached.Request{Opcode: memcached.OpGet, Key: "b"}, &resp, time.Second, 100*time.Millisecond)
		require.ErrorIs(t, err, memcached.ErrTimeout)
		assert.Less(t, time.Since(start), 500*time.Millisecond)
		// The long call waits for its own deadline, not for the short one's.
		select {
		case err := <-long:
			assert.ErrorIs(t, err, memcached.ErrTimeout)
			assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)
		case <-time.After(5 * time.Second):
			t.Fatal("the long call is still waiting")
		}
	})
	t.Run("server dies then comes back refused", func(t *testing.T) {
		s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
		require.NoError(t, err)
		addr := s.Addr().String()
		pool := memcached.NewPool(addr, nil)
		mux := pool.Mux()
		var resp memcached.Response
		get := func() error {
			return mux.Do(context.Background(), &memcached.Request{Opcode: memcached.OpGet, Key: "k"}, &resp, time.Second, time.Second)
		}
		require.NoError(t, get())
		require.NoError(t, s.Close())
		err = get()
		require.Error(t, err)
		var de *memcached.DialError
		assert.False(t, errors.As(err, &de), "the live connection failed, not a dial: %v", err)
		err = get()
		require.ErrorAs(t, err, &de)
	})
	t.Run("closed pool", func(t *testing.T) {
		addr := backends[1].start(t)
		pool := memcached.NewPool(addr, nil)
		pool.Close()
		var resp memcached.Response
		err := pool.Mux().Do(context.Background(), &memcached.Request{Opcode: memcached.OpNoop}, &resp, time.Second, time.Second)
		assert.ErrorIs(t, err, memcached.ErrClosed)
	})
}

// The seed route's two round trips, on the Mux, allocate nothing (against
// a real memcached: the embedded server's allocations would count too).
func TestMuxDoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	addr := backends[0].start(t)
	pool := memcached.NewPool(addr, nil)
	t.Cleanup(func() { pool.Close() })
	mux := pool.Mux()
	var resp memcached.Response
	var ex [8]byte
	set := memcached.Request{Opcode: memcached.OpSet, Key: "alloc", Value: []byte("v"), Extras: memcached.AppendStoreExtras(ex[:0], 0, 0)}
	get := memcached.Request{Opcode: memcached.OpGet, Key: "alloc"}
	ctx := context.Background()
	run := func() {
		if err := mux.Do(ctx, &set, &resp, time.Second, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := mux.Do(ctx, &get, &resp, time.Second, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	run()
	assert.Zero(t, testing.AllocsPerRun(200, run))
}

// embeddedMux is the Mux of a pool (with opts) on an embedded server, all
// closed when tb ends.
func embeddedMux(tb testing.TB, opts *memcached.Options) *memcached.Mux {
	s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	pool := memcached.NewPool(s.Addr().String(), opts)
	tb.Cleanup(func() { pool.Close() })
	return pool.Mux()
}

func BenchmarkMuxDo(b *testing.B) {
	mux := embeddedMux(b, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var resp memcached.Response
		get := memcached.Request{Opcode: memcached.OpGet, Key: "bench"}
		for pb.Next() {
			if err := mux.Do(context.Background(), &get, &resp, time.Second, time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}
