package memcached_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/memcached"
)

// slowProxy forwards connections to target, holding each chunk of the
// server's answers for delay, and counts the connections it accepted.
func slowProxy(t *testing.T, target string, delay time.Duration) (string, *atomic.Int32) {
	t.Helper()
	var accepted atomic.Int32
	addr := scripted(t, func(br *bufio.Reader, c net.Conn) {
		accepted.Add(1)
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer s.Close()
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					time.Sleep(delay)
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		io.Copy(s, br) //nolint:errcheck // until the client hangs up
	})
	return addr, &accepted
}

// A call that times out on a shared connection costs only itself: the
// call pipelined beside it gets its own answer when it comes, and the
// connection stays in step for the calls after, on both protocols and
// both servers.
func TestMuxTimeoutCostsOnlyTheCallsPastTheirDeadline(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr, accepted := slowProxy(t, b.start(t), 300*time.Millisecond)
			t.Run("binary", func(t *testing.T) {
				pool := memcached.NewPool(addr, nil)
				t.Cleanup(func() { pool.Close() })
				mux := pool.Mux()
				do := func(req *memcached.Request, read time.Duration) (*memcached.Response, error) {
					var resp memcached.Response
					err := mux.Do(context.Background(), req, &resp, time.Second, read)
					return &resp, err
				}
				_, err := do(setReq("k", "v1", memcached.OpSet), 5*time.Second)
				require.NoError(t, err)
				long := make(chan *memcached.Response, 1)
				go func() {
					resp, err := do(&memcached.Request{Opcode: memcached.OpGet, Key: "k"}, 5*time.Second)
					assert.NoError(t, err)
					long <- resp
				}()
				time.Sleep(50 * time.Millisecond) // the long call is waiting
				start := time.Now()
				_, err = do(&memcached.Request{Opcode: memcached.OpGet, Key: "k"}, 100*time.Millisecond)
				require.ErrorIs(t, err, memcached.ErrTimeout)
				assert.Less(t, time.Since(start), 250*time.Millisecond)
				resp := <-long
				assert.Equal(t, memcached.StatusNoError, resp.Status)
				assert.Equal(t, "v1", string(resp.Value))
				// In step: the skipped reply was read and dropped.
				_, err = do(setReq("k", "v2", memcached.OpSet), 5*time.Second)
				require.NoError(t, err)
				resp, err = do(&memcached.Request{Opcode: memcached.OpGet, Key: "k"}, 5*time.Second)
				require.NoError(t, err)
				assert.Equal(t, "v2", string(resp.Value))
				assert.EqualValues(t, 1, accepted.Load(), "one connection throughout")
			})
			t.Run("text", func(t *testing.T) {
				pool := memcached.NewPool(addr, textOpts)
				t.Cleanup(func() { pool.Close() })
				mux := pool.Mux()
				before := accepted.Load()
				do := func(cmd string, read time.Duration) (*memcached.TextReply, error) {
					var r memcached.TextReply
					err := mux.DoText(context.Background(), []byte(cmd), &r, time.Second, read)
					return &r, err
				}
				r, err := do("set t 0 0 2\r\nv1\r\n", 5*time.Second)
				require.NoError(t, err)
				require.Equal(t, "STORED", string(r.Line))
				long := make(chan *memcached.TextReply, 1)
				go func() {
					r, err := do("get t\r\n", 5*time.Second)
					assert.NoError(t, err)
					long <- r
				}()
				time.Sleep(50 * time.Millisecond)
				start := time.Now()
				_, err = do("get t\r\n", 100*time.Millisecond)
				require.ErrorIs(t, err, memcached.ErrTimeout)
				assert.Less(t, time.Since(start), 250*time.Millisecond)
				r = <-long
				assert.True(t, r.Hit)
				assert.Equal(t, "v1", string(r.Value))
				r, err = do("set t 0 0 2\r\nv2\r\n", 5*time.Second)
				require.NoError(t, err)
				assert.Equal(t, "STORED", string(r.Line))
				r, err = do("get t\r\n", 5*time.Second)
				require.NoError(t, err)
				assert.Equal(t, "v2", string(r.Value))
				assert.Equal(t, before+1, accepted.Load(), "one connection throughout")
			})
		})
	}
}

// A connection whose skipped reply does not come within a second of its
// caller's deadline is given up, at the next timeout on it, and the next
// call dials a new one.
func TestMuxGivesUpAConnectionWhoseSkippedReplyNeverComes(t *testing.T) {
	addr, accepted := countingSilentListener(t)
	pool := memcached.NewPool(addr, nil)
	t.Cleanup(func() { pool.Close() })
	mux := pool.Mux()
	get := func(read time.Duration) error {
		var resp memcached.Response
		return mux.Do(context.Background(), &memcached.Request{Opcode: memcached.OpGet, Key: "k"}, &resp, time.Second, read)
	}
	require.ErrorIs(t, get(100*time.Millisecond), memcached.ErrTimeout)
	start := time.Now()
	require.ErrorIs(t, get(1500*time.Millisecond), memcached.ErrTimeout)
	assert.GreaterOrEqual(t, time.Since(start), 1400*time.Millisecond)
	assert.EqualValues(t, 1, accepted.Load())
	require.ErrorIs(t, get(100*time.Millisecond), memcached.ErrTimeout)
	assert.EqualValues(t, 2, accepted.Load(), "a new connection after the stuck one was given up")
}

// Callers with deadlines around the server's delay, some timing out and
// some not, on shared connections: every answer a caller gets is its own.
func TestMuxTimeoutsNeverCrossReplies(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr, accepted := slowProxy(t, b.start(t), 20*time.Millisecond)
			for _, opts := range []*memcached.Options{nil, textOpts} {
				pool := memcached.NewPool(addr, opts)
				t.Cleanup(func() { pool.Close() })
				mux := pool.Mux()
				before := accepted.Load()
				get := func(key string, read time.Duration) (string, error) {
					if opts == nil {
						var resp memcached.Response
						err := mux.Do(context.Background(), &memcached.Request{Opcode: memcached.OpGet, Key: key}, &resp, time.Second, read)
						return string(resp.Value), err
					}
					var r memcached.TextReply
					err := mux.DoText(context.Background(), []byte("get "+key+"\r\n"), &r, time.Second, read)
					return string(r.Value), err
				}
				var wg sync.WaitGroup
				var ok, timedOut atomic.Int32
				for g := range 16 {
					key, val := fmt.Sprintf("cross%d", g), fmt.Sprintf("value-%d", g)
					if opts == nil {
						var resp memcached.Response
						require.NoError(t, mux.Do(context.Background(), setReq(key, val, memcached.OpSet), &resp, time.Second, 5*time.Second))
					} else {
						var r memcached.TextReply
						require.NoError(t, mux.DoText(context.Background(), []byte(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(val), val)), &r, time.Second, 5*time.Second))
						require.Equal(t, "STORED", string(r.Line))
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range 20 {
							read := time.Duration(5+(g*7+i*13)%60) * time.Millisecond
							got, err := get(key, read)
							if errors.Is(err, memcached.ErrTimeout) {
								timedOut.Add(1)
								continue
							}
							if assert.NoError(t, err) && assert.Equal(t, val, got) {
								ok.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				t.Logf("%d answered, %d timed out, %d connections so far", ok.Load(), timedOut.Load(), accepted.Load())
				assert.Positive(t, ok.Load())
				assert.Positive(t, timedOut.Load())
				assert.LessOrEqual(t, int(accepted.Load()-before), memcached.DefaultConnsPerServer, "timeouts cost no connection")
			}
		})
	}
}
