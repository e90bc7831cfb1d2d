package memcached_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/internal/mctest"
	"luaserve/memcached"
)

// TestClientFailover kills one of two real memcached processes mid-test:
// its keys move to the survivor after the failed connect, the other keys
// never move, and when it is restarted on the same port (after the retry
// interval) its keys come back to it.
func TestClientFailover(t *testing.T) {
	for _, dist := range []memcached.Distribution{memcached.Ketama, memcached.ModuloCRC32} {
		for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
			t.Run(fmt.Sprintf("dist%d/%s", dist, proto), func(t *testing.T) {
				testFailover(t, dist, proto)
			})
		}
	}
}

func testFailover(t *testing.T, dist memcached.Distribution, proto memcached.Protocol) {
	a, b := mctest.Real(t), mctest.Real(t)
	const retry = 300 * time.Millisecond
	c, err := memcached.New(memcached.Config{
		Servers: []string{a.Addr, b.Addr}, Distribution: dist, Protocol: proto,
		RetryInterval: retry, ReadTimeout: 500 * time.Millisecond,
	})
	require.NoError(t, err)
	defer c.Close()

	// Which server owns which key, by asking each server directly.
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = "fo" + strconv.Itoa(i)
		require.NoError(t, c.Set(&memcached.Item{Key: keys[i], Value: []byte("1")}))
	}
	onA := ownedBy(t, a.Addr, keys)
	require.NotEmpty(t, onA)
	require.Less(t, len(onA), len(keys))

	a.Stop()
	// Keys of the dead server fail at most once each (the connection that
	// was open breaks), then go to b; b's keys keep working throughout.
	failures := 0
	for _, k := range keys {
		err := c.Set(&memcached.Item{Key: k, Value: []byte("2")})
		if err != nil {
			require.True(t, onA[k], "key %s of the live server failed: %v", k, err)
			failures++
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("2")}), "second try goes to the survivor")
		}
	}
	assert.LessOrEqual(t, failures, memcached.DefaultConnsPerServer, "only calls on the broken connections fail")
	onB := ownedBy(t, b.Addr, keys)
	assert.Len(t, onB, len(keys), "every key now lives on b")

	restarted, err := mctest.StartOn(a.Port)
	require.NoError(t, err)
	t.Cleanup(restarted.Stop)
	time.Sleep(retry + 50*time.Millisecond)
	for _, k := range keys {
		require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("3")}))
	}
	back := ownedBy(t, a.Addr, keys)
	assert.Equal(t, onA, back, "a's keys came back to a and only they")
}

// ownedBy returns the keys that addr holds, asked over a direct connection.
func ownedBy(t *testing.T, addr string, keys []string) map[string]bool {
	t.Helper()
	c, err := memcached.New(memcached.Config{Servers: []string{addr}})
	require.NoError(t, err)
	defer c.Close()
	items, err := c.GetMulti(keys)
	require.NoError(t, err)
	out := map[string]bool{}
	for k := range items {
		out[k] = true
	}
	return out
}

func TestClientFailoverDisabled(t *testing.T) {
	a, b := mctest.Real(t), mctest.Real(t)
	c, err := memcached.New(memcached.Config{Servers: []string{a.Addr, b.Addr}, DisableFailover: true})
	require.NoError(t, err)
	defer c.Close()
	a.Stop()
	failed := 0
	for i := 0; i < 50; i++ {
		if err := c.Set(&memcached.Item{Key: "k" + strconv.Itoa(i), Value: []byte("1")}); err != nil {
			failed++
		}
	}
	assert.Greater(t, failed, 5, "keys of the dead server keep failing")
	assert.Less(t, failed, 50)
}

func TestClientAllServersDown(t *testing.T) {
	a := mctest.Real(t)
	c, err := memcached.New(memcached.Config{Servers: []string{a.Addr}, RetryInterval: time.Hour})
	require.NoError(t, err)
	defer c.Close()
	a.Stop()
	_, err = c.Get("k")
	assert.Error(t, err)
	_, err = c.Get("k")
	assert.ErrorIs(t, err, memcached.ErrServerDown, "marked down after the failed connect")
}

// TestClientConcurrent: many goroutines share the pipelined connections and
// each gets its own answers, including multi-gets and errors.
func TestClientConcurrent(t *testing.T) {
	p := mctest.Real(t)
	for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
		t.Run(proto.String(), func(t *testing.T) {
			c, err := memcached.New(memcached.Config{Servers: []string{p.Addr}, Protocol: proto})
			require.NoError(t, err)
			defer c.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := 0; g < 32; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 100; i++ {
						k := fmt.Sprintf("%s-c%d-%d", proto, g, i)
						v := []byte(k + "-value")
						if err := c.Set(&memcached.Item{Key: k, Value: v}); err != nil {
							errs <- err
							return
						}
						it, err := c.Get(k)
						if err != nil || string(it.Value) != string(v) {
							errs <- fmt.Errorf("get %s: %v %+v", k, err, it)
							return
						}
						if _, err := c.Get(k + "-missing"); !errors.Is(err, memcached.ErrCacheMiss) {
							errs <- fmt.Errorf("miss %s: %v", k, err)
							return
						}
						if i%10 == 0 {
							m, err := c.GetMulti([]string{k, k + "-missing"})
							if err != nil || len(m) != 1 || string(m[k].Value) != string(v) {
								errs <- fmt.Errorf("multi %s: %v %v", k, err, m)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestClientQuietFailuresReachTheirCaller: goroutines sharing connections
// each send a batch of quiet sets with one failing item; each sees exactly
// its own failure and nobody else's.
func TestClientQuietFailuresReachTheirCaller(t *testing.T) {
	p := mctest.Real(t)
	for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
		t.Run(proto.String(), func(t *testing.T) {
			c, err := memcached.New(memcached.Config{Servers: []string{p.Addr}, Protocol: proto, ConnsPerServer: 1})
			require.NoError(t, err)
			defer c.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for round := 0; round < 10; round++ {
						var items []*memcached.Item
						bad := fmt.Sprintf("%s-q%d-%d-bad", proto, g, round)
						for i := 0; i < 20; i++ {
							items = append(items, &memcached.Item{Key: fmt.Sprintf("%s-q%d-%d-%d", proto, g, round, i), Value: []byte("v")})
						}
						items = append(items[:10], append([]*memcached.Item{{Key: bad, Value: make([]byte, 2<<20)}}, items[10:]...)...)
						failed, err := c.SetMulti(items)
						if err != nil || len(failed) != 1 || !errors.Is(failed[bad], memcached.ErrValueTooLarge) {
							errs <- fmt.Errorf("goroutine %d round %d: %v %v", g, round, failed, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestClientConfigErrors(t *testing.T) {
	_, err := memcached.New(memcached.Config{})
	assert.ErrorIs(t, err, memcached.ErrNoServers)
	_, err = memcached.New(memcached.Config{Servers: []string{"h:1 x"}})
	assert.Error(t, err)
	_, err = memcached.New(memcached.Config{Servers: []string{"h:1"}, Distribution: 9})
	assert.Error(t, err)
	c, err := memcached.New(memcached.Config{Servers: []string{"127.0.0.1:1"}})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = c.Get("k")
	assert.ErrorIs(t, err, memcached.ErrClosed)
}

// TestClientGetAllocs: the binary Get path allocates only the returned Item
// and its value.
func TestClientGetAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; run without -race")
	}
	p := mctest.Real(t)
	c, err := memcached.New(memcached.Config{Servers: []string{p.Addr}})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Set(&memcached.Item{Key: "alloc", Value: make([]byte, 100)}))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Get("alloc"); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 2.0, "Item + value")
	item := &memcached.Item{Key: "alloc", Value: make([]byte, 100)}
	allocs = testing.AllocsPerRun(200, func() {
		if err := c.Set(item); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

// TestClientManyKeys: batches larger than one text command line are split.
func TestClientManyKeys(t *testing.T) {
	p := mctest.Real(t)
	for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
		t.Run(proto.String(), func(t *testing.T) {
			c, err := memcached.New(memcached.Config{Servers: []string{p.Addr}, Protocol: proto})
			require.NoError(t, err)
			defer c.Close()
			var items []*memcached.Item
			var keys []string
			for i := 0; i < 1000; i++ {
				k := fmt.Sprintf("%s-many-%03d", proto, i)
				keys = append(keys, k)
				items = append(items, &memcached.Item{Key: k, Value: []byte(strconv.Itoa(i))})
			}
			failed, err := c.SetMulti(items)
			require.NoError(t, err)
			require.Empty(t, failed)
			got, err := c.GetMulti(append(keys, proto.String()+"-absent"))
			require.NoError(t, err)
			require.Len(t, got, 1000)
			assert.Equal(t, "999", string(got[keys[999]].Value))
		})
	}
}

// TestClientHugeBatches: a batch far larger than the socket buffers in both
// directions must not deadlock the caller that writes it against the replies
// it would have to read.
func TestClientHugeBatches(t *testing.T) {
	p := mctest.Real(t, "-m", "256")
	value := make([]byte, 50<<10)
	for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
		t.Run(proto.String(), func(t *testing.T) {
			c, err := memcached.New(memcached.Config{Servers: []string{p.Addr}, Protocol: proto,
				SendTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
			require.NoError(t, err)
			defer c.Close()
			var items []*memcached.Item
			var keys []string
			for i := 0; i < 1000; i++ { // 50 MB each way
				k := proto.String() + "-huge-" + strconv.Itoa(i)
				keys = append(keys, k)
				items = append(items, &memcached.Item{Key: k, Value: value})
			}
			failed, err := c.SetMulti(items)
			require.NoError(t, err)
			require.Empty(t, failed)
			got, err := c.GetMulti(keys)
			require.NoError(t, err)
			assert.Len(t, got, len(keys))
		})
	}
}
