package luabind

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shdictFakeTime replaces the dict's clock with one the test moves.
func shdictFakeTime(d *SharedDict) *atomic.Int64 {
	var now atomic.Int64
	now.Store(1_000_000)
	d.now = now.Load
	return &now
}

func TestShdictExpiry(t *testing.T) {
	d := NewSharedDict("t", 1<<20)
	now := shdictFakeTime(d)
	ok, err, _ := d.store(shOpSet, "k", shValue{kind: shString, str: "v"}, false, 1.5, 0)
	require.True(t, ok, err)
	ttl, found := d.ttl("k")
	require.True(t, found)
	assert.InDelta(t, 1.5, ttl, 0.001)

	now.Add(1499)
	_, _, found, _, _ = d.get("k", false)
	assert.True(t, found)
	now.Add(1)
	v, _, found, stale, _ := d.get("k", true)
	assert.True(t, found && stale, "expired at exactly exptime, still there for get_stale")
	assert.Equal(t, "v", v.str)
	_, _, found, _, _ = d.get("k", false)
	assert.False(t, found)
	_, _, found, _, _ = d.get("k", true)
	assert.False(t, found, "a plain get removes expired entries from the cold end, as nginx does")

	ok, err, _ = d.store(shOpAdd, "k", shValue{kind: shString, str: "w"}, false, 0, 0)
	assert.True(t, ok, "add over an expired key succeeds: %s", err)
	ok, err, _ = d.store(shOpReplace, "gone", shValue{kind: shNumber, num: 1}, false, 0, 0)
	assert.False(t, ok)
	assert.Equal(t, "not found", err)
}

func TestShdictIncrInitTTL(t *testing.T) {
	d := NewSharedDict("t", 1<<20)
	now := shdictFakeTime(d)
	v, err, _ := d.incr("c", 2, 10, true, 1)
	require.Empty(t, err)
	assert.Equal(t, 12.0, v)
	v, _, _ = d.incr("c", 1, 0, false, 0)
	assert.Equal(t, 13.0, v)
	now.Add(1000)
	_, err, _ = d.incr("c", 1, 0, false, 0)
	assert.Equal(t, "not found", err)
	v, _, _ = d.incr("c", 1, 5, true, 0)
	assert.Equal(t, 6.0, v, "an expired counter restarts from init")
}

func TestShdictLRUEviction(t *testing.T) {
	d := NewSharedDict("t", 100<<10)
	big := string(make([]byte, 1000))
	forcedSeen := false
	for i := 0; i < 300; i++ {
		ok, err, forcible := d.store(shOpSet, "k"+strconv.Itoa(i), shValue{kind: shString, str: big}, false, 0, 0)
		require.True(t, ok, err)
		forcedSeen = forcedSeen || forcible
		if i == 10 {
			// Keep k0 hot: a lookup refreshes it.
			_, _, found, _, _ := d.get("k0", false)
			require.True(t, found)
		}
	}
	assert.True(t, forcedSeen)
	_, _, found, _, _ := d.get("k1", false)
	assert.False(t, found, "cold entries go first")
	_, _, found, _, _ = d.get("k299", false)
	assert.True(t, found)

	ok, err, forcible := d.store(shOpSafeSet, "new", shValue{kind: shString, str: big}, false, 0, 0)
	assert.False(t, ok)
	assert.Equal(t, "no memory", err)
	assert.False(t, forcible)
	ok, err, _ = d.store(shOpSet, "huge", shValue{kind: shString, str: string(make([]byte, 200<<10))}, false, 0, 0)
	assert.False(t, ok)
	assert.Equal(t, "no memory", err)
}

func TestShdictFreeSpaceMatchesNginx(t *testing.T) {
	// Figures measured on nginx 1.22 + lua-nginx-module 0.10.23.
	cases := []struct {
		capacity int64
		free     int64
	}{
		{12 << 10, 0},
		{100 << 10, 90112},
		{1 << 20, 1032192},
	}
	for _, c := range cases {
		assert.Equal(t, c.free, NewSharedDict("t", c.capacity).FreeSpace(), c.capacity)
	}
	d := NewSharedDict("t", 1<<20)
	for i := 1; i <= 1000; i++ {
		d.store(shOpSet, "key"+strconv.Itoa(i), shValue{kind: shString, str: string(make([]byte, 100))}, false, 0, 0)
	}
	assert.Equal(t, int64(774144), d.FreeSpace())
}

func TestShdictLists(t *testing.T) {
	d := NewSharedDict("t", 1<<20)
	n, err := d.push("l", shItem{str: "a"}, true)
	require.Empty(t, err)
	assert.Equal(t, 1, n)
	n, _ = d.push("l", shItem{num: 2, isNum: true}, false)
	assert.Equal(t, 2, n)
	it, found, _ := d.pop("l", false)
	assert.True(t, found && it.isNum && it.num == 2)
	it, _, _ = d.pop("l", true)
	assert.Equal(t, "a", it.str)
	_, found, _ = d.pop("l", true)
	assert.False(t, found, "an emptied list is gone")
	assert.Equal(t, int64(1032192), d.FreeSpace(), "list memory is returned")

	d.store(shOpSet, "s", shValue{kind: shString, str: "x"}, false, 0, 0)
	_, err = d.push("s", shItem{str: "y"}, true)
	assert.Equal(t, "value not a list", err)
}

func TestShdictLuaBinding(t *testing.T) {
	s := newNgxtState(t, nil)
	out := s.run(t, `
		local d = ngx.shared.dogs
		ngx.say(type(d), " ", ngx.shared.dogs == d, " ", ngx.shared.nope)
		d:set("a", 1, 0, 3)
		ngx.say(d:get("a"))
		ngx.say(d:get_stale("a"))
		ngx.say(d:lpush("a", 1))
		ngx.say(d:get("missing"))`)
	assert.Equal(t, "table true nil\n13\n13false\nnilvalue not a list\nnil\n", out)
}

// TestShdictConcurrent hammers one dict from several goroutines; run with
// -race. Counters must add up exactly.
func TestShdictConcurrent(t *testing.T) {
	d := NewSharedDict("t", 1<<20)
	var wg sync.WaitGroup
	const workers, rounds = 4, 2000
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				d.incr("counter", 1, 0, true, 0)
				key := "k" + strconv.Itoa(i%50)
				d.store(shOpSet, key, shValue{kind: shNumber, num: float64(w)}, false, 0, 0)
				d.get(key, false)
				d.push("list", shItem{str: "x"}, false)
				d.pop("list", true)
			}
		}(w)
	}
	wg.Wait()
	v, _, found, _, _ := d.get("counter", false)
	require.True(t, found)
	assert.Equal(t, float64(workers*rounds), v.num)
}

func BenchmarkShdictGetSetParallel(b *testing.B) {
	d := NewSharedDict("bench", 16<<20)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
		d.store(shOpSet, keys[i], shValue{kind: shString, str: "value"}, false, 0, 0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := keys[i&1023]
			if i%10 == 0 {
				d.store(shOpSet, k, shValue{kind: shString, str: "value"}, false, 0, 0)
			} else {
				d.get(k, false)
			}
			i++
		}
	})
}

func BenchmarkShdictLuaGet(b *testing.B) {
	s := newNgxtState(b, nil)
	require.NoError(b, s.L.DoString(`
		local d = ngx.shared.dogs
		d:set("k", "v")
		function bench_get() return d:get("k") end`))
	fn := s.L.GetGlobal("bench_get")
	b.ReportAllocs()
	for b.Loop() {
		s.L.Push(fn)
		s.L.Call(0, 1)
		s.L.Pop(1)
	}
}
