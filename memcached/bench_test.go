package memcached_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"luaserve/internal/mctest"
	"luaserve/memcached"
)

// setGetter is one Set then one Get of the same key.
type setGetter func(key string, value []byte) error

// BenchmarkParallelSetGet: each op is a Set and a Get of a 100-byte value,
// issued from 1, 16 or 64 goroutines at once against one real memcached,
// for this client (binary and text) and for gomemcache as the peer. The
// gomemcache client keeps as many idle connections as there are goroutines,
// its best setting here.
func BenchmarkParallelSetGet(b *testing.B) {
	p := mctest.Real(b)
	value := make([]byte, 100)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "bench:" + strconv.Itoa(i)
	}
	// Warm the server (threads, slabs, the keys) so that whichever client
	// runs first is not charged for it.
	warm := memcache.New(p.Addr)
	for i := 0; i < 5000; i++ {
		if err := warm.Set(&memcache.Item{Key: keys[i%len(keys)], Value: value}); err != nil {
			b.Fatal(err)
		}
	}
	warm.Close()
	for _, g := range []int{1, 16, 64} {
		for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
			b.Run("luaserve-"+proto.String()+"/g="+strconv.Itoa(g), func(b *testing.B) {
				c, err := memcached.New(memcached.Config{Servers: []string{p.Addr}, Protocol: proto})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				item := func() *memcached.Item { return &memcached.Item{Value: value} }
				runParallel(b, g, keys, func() setGetter {
					it := item()
					return func(key string, v []byte) error {
						it.Key = key
						if err := c.Set(it); err != nil {
							return err
						}
						_, err := c.Get(key)
						return err
					}
				})
			})
		}
		b.Run("gomemcache/g="+strconv.Itoa(g), func(b *testing.B) {
			c := memcache.New(p.Addr)
			c.MaxIdleConns = g
			defer c.Close()
			runParallel(b, g, keys, func() setGetter {
				it := &memcache.Item{Value: value}
				return func(key string, v []byte) error {
					it.Key = key
					if err := c.Set(it); err != nil {
						return err
					}
					_, err := c.Get(key)
					return err
				}
			})
		})
	}
}

// runParallel spreads b.N ops over exactly g goroutines.
func runParallel(b *testing.B, g int, keys []string, newOp func() setGetter) {
	b.ReportAllocs()
	b.SetBytes(200)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for w := 0; w < g; w++ {
		op := newOp()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := op(keys[i%int64(len(keys))], nil); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}
