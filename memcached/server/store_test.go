package server

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/memcached"
)

// fakeClock drives a store's notion of time in whole seconds.
type fakeClock struct{ now int64 }

func (c *fakeClock) unix() int64 { return c.now }

func newTestStore(maxBytes int64) (*store, *fakeClock) {
	clk := &fakeClock{now: 1_700_000_000}
	return newStore(maxBytes, memcached.DefaultItemSize, clk.unix), clk
}

func mustGet(st *store, key string) (string, bool) {
	var v string
	ok := st.get([]byte(key), false, 0, func(it *item) { v = string(it.value) })
	return v, ok
}

func TestStoreExpiry(t *testing.T) {
	const day = 24 * 60 * 60
	tests := []struct {
		name    string
		exptime int64 // as a text client sends it
		alive   []int64
		dead    []int64 // seconds after the set
	}{
		{"never", 0, []int64{0, 100 * day}, nil},
		{"relative", 10, []int64{0, 9}, []int64{10, 11}},
		{"thirty days is still relative", 30 * day, []int64{0, 30*day - 1}, []int64{30 * day}},
		{"negative is already expired", -1, nil, []int64{0}},
		{"absolute past", 1_000_000_000, nil, []int64{0}},
		{"just over thirty days is absolute and past", 30*day + 1, nil, []int64{0}},
		{"absolute future", 1_700_000_000 + 50, []int64{0, 49}, []int64{50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range tt.alive {
				st, clk := newTestStore(1 << 20)
				e := tt.exptime
				if e < 0 {
					e = textExptime(int32(e))
				}
				res, _ := st.store(modeSet, []byte("k"), 0, st.realtime(e), []byte("v"), 0)
				require.Equal(t, resStored, res)
				clk.now += d
				_, ok := mustGet(st, "k")
				assert.True(t, ok, "alive %ds after set", d)
			}
			for _, d := range tt.dead {
				st, clk := newTestStore(1 << 20)
				e := tt.exptime
				if e < 0 {
					e = textExptime(int32(e))
				}
				st.store(modeSet, []byte("k"), 0, st.realtime(e), []byte("v"), 0)
				clk.now += d
				_, ok := mustGet(st, "k")
				assert.False(t, ok, "dead %ds after set", d)
			}
		})
	}
}

func TestStoreLRUEviction(t *testing.T) {
	size := itemSize(3, 0, 100)
	st, _ := newTestStore(10 * size)
	val := make([]byte, 100)
	for i := range 10 {
		res, _ := st.store(modeSet, []byte("k"+strconv.Itoa(i+10)), 0, 0, val, 0)
		require.Equal(t, resStored, res)
	}
	// Touch the oldest so that it survives; the next oldest goes instead.
	_, ok := mustGet(st, "k10")
	require.True(t, ok)
	for i := range 3 {
		st.store(modeSet, []byte("n"+strconv.Itoa(i+10)), 0, 0, val, 0)
	}
	c, items, bytes := st.snapshot()
	assert.Equal(t, 10, items)
	assert.LessOrEqual(t, bytes, 10*size)
	assert.Equal(t, uint64(3), c.evictions)
	for _, k := range []string{"k11", "k12", "k13"} {
		_, ok := mustGet(st, k)
		assert.False(t, ok, "%s should be evicted", k)
	}
	for _, k := range []string{"k10", "k14", "n12"} {
		_, ok := mustGet(st, k)
		assert.True(t, ok, "%s should survive", k)
	}
}

func TestStoreItemLargerThanMemory(t *testing.T) {
	st, _ := newTestStore(1000)
	res, _ := st.store(modeSet, []byte("k"), 0, 0, make([]byte, 2000), 0)
	assert.Equal(t, resNoMemory, res)
}

func TestStoreExpiredReclaimedFirst(t *testing.T) {
	size := itemSize(2, 0, 10)
	st, clk := newTestStore(2 * size)
	st.store(modeSet, []byte("aa"), 0, st.realtime(5), make([]byte, 10), 0)
	st.store(modeSet, []byte("bb"), 0, 0, make([]byte, 10), 0)
	clk.now += 10
	st.store(modeSet, []byte("cc"), 0, 0, make([]byte, 10), 0)
	c, items, _ := st.snapshot()
	assert.Equal(t, 2, items)
	assert.Equal(t, uint64(0), c.evictions)
	assert.Equal(t, uint64(1), c.reclaimed)
}

func TestStoreFlushDelay(t *testing.T) {
	st, clk := newTestStore(1 << 20)
	st.store(modeSet, []byte("old"), 0, 0, []byte("1"), 0)
	st.flush(5)
	clk.now += 2
	_, ok := mustGet(st, "old")
	assert.True(t, ok, "visible before the deadline")
	clk.now += 3
	_, ok = mustGet(st, "old")
	assert.False(t, ok, "flushed at the deadline")
	st.store(modeSet, []byte("new"), 0, 0, []byte("1"), 0)
	_, ok = mustGet(st, "new")
	assert.True(t, ok, "items stored after the deadline live")
}

func TestStoreFlushNow(t *testing.T) {
	st, _ := newTestStore(1 << 20)
	st.store(modeSet, []byte("a"), 0, 0, []byte("1"), 0)
	st.flush(0)
	_, ok := mustGet(st, "a")
	assert.False(t, ok)
	st.store(modeSet, []byte("a"), 0, 0, []byte("2"), 0)
	v, ok := mustGet(st, "a")
	assert.True(t, ok)
	assert.Equal(t, "2", v)
}

func TestStoreModes(t *testing.T) {
	st, _ := newTestStore(1 << 20)
	k := []byte("k")
	res, _ := st.store(modeReplace, k, 0, 0, []byte("x"), 0)
	assert.Equal(t, resNotStored, res)
	res, _ = st.store(modeAppend, k, 0, 0, []byte("x"), 0)
	assert.Equal(t, resNotStored, res)
	res, _ = st.store(modeCAS, k, 0, 0, []byte("x"), 1)
	assert.Equal(t, resNotFound, res)
	res, cas := st.store(modeAdd, k, 9, 0, []byte("b"), 0)
	assert.Equal(t, resStored, res)
	res, _ = st.store(modeAdd, k, 0, 0, []byte("x"), 0)
	assert.Equal(t, resNotStored, res)
	res, _ = st.store(modeCAS, k, 0, 0, []byte("x"), cas+1)
	assert.Equal(t, resExists, res)
	res, _ = st.store(modeAppend, k, 0, 0, []byte("c"), 0)
	assert.Equal(t, resStored, res)
	res, _ = st.store(modePrepend, k, 0, 0, []byte("a"), 0)
	assert.Equal(t, resStored, res)
	var flags uint32
	var v string
	st.get(k, false, 0, func(it *item) { flags, v, cas = it.flags, string(it.value), it.cas })
	assert.Equal(t, "abc", v)
	assert.Equal(t, uint32(9), flags, "append keeps the old flags")
	res, cas2 := st.store(modeCAS, k, 1, 0, []byte("z"), cas)
	assert.Equal(t, resStored, res)
	assert.Greater(t, cas2, cas, "CAS uniques grow")
}

func TestStoreDelta(t *testing.T) {
	tests := []struct {
		name  string
		value string
		incr  bool
		delta uint64
		res   deltaResult
		out   string
		after string
	}{
		{"incr", "10", true, 5, deltaOK, "15", "15"},
		{"shrinks in place", "100", false, 1, deltaOK, "99", "99 "},
		{"grows", "99", true, 1, deltaOK, "100", "100"},
		{"wraps", "18446744073709551615", true, 2, deltaOK, "1", "1                   "},
		{"decr floors at zero", "5", false, 10, deltaOK, "0", "0"},
		{"leading space", " 5", true, 1, deltaOK, "6", "6 "},
		{"non numeric", "abc", true, 1, deltaNonNumeric, "", "abc"},
		{"trailing junk", "5x", true, 1, deltaNonNumeric, "", "5x"},
		{"negative", "-1", true, 1, deltaNonNumeric, "", "-1"},
		{"empty", "", true, 1, deltaNonNumeric, "", ""},
		{"too long", "123456789012345678901", true, 1, deltaNonNumeric, "", "123456789012345678901"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := newTestStore(1 << 20)
			st.store(modeSet, []byte("n"), 0, 0, []byte(tt.value), 0)
			var buf [24]byte
			res, _, out := st.delta([]byte("n"), tt.incr, tt.delta, 0, buf[:], nil)
			assert.Equal(t, tt.res, res)
			assert.Equal(t, tt.out, string(out))
			v, _ := mustGet(st, "n")
			assert.Equal(t, tt.after, v)
		})
	}
	t.Run("held item is replaced, not rewritten", func(t *testing.T) {
		st, _ := newTestStore(1 << 20)
		st.store(modeSet, []byte("n"), 0, 0, []byte("100"), 0)
		var held *item
		st.get([]byte("n"), false, 0, func(it *item) { held = it })
		var buf [24]byte
		res, _, _ := st.delta([]byte("n"), false, 1, 0, buf[:], func(it *item) bool { return it == held })
		require.Equal(t, deltaOK, res)
		assert.Equal(t, "100", string(held.value), "the unsent reply keeps its bytes")
		v, _ := mustGet(st, "n")
		assert.Equal(t, "99", v)
	})
	t.Run("missing and cas", func(t *testing.T) {
		st, _ := newTestStore(1 << 20)
		var buf [24]byte
		res, _, _ := st.delta([]byte("n"), true, 1, 0, buf[:], nil)
		assert.Equal(t, deltaNotFound, res)
		st.store(modeSet, []byte("n"), 0, 0, []byte("1"), 0)
		res, _, _ = st.delta([]byte("n"), true, 1, 12345, buf[:], nil)
		assert.Equal(t, deltaCASMismatch, res)
	})
}

func TestStoreReap(t *testing.T) {
	st, clk := newTestStore(1 << 20)
	for i := range 50 {
		st.store(modeSet, []byte("k"+strconv.Itoa(i)), 0, st.realtime(int64(1+i%2)), []byte("v"), 0)
	}
	clk.now += 1
	st.reap(1000)
	_, items, _ := st.snapshot()
	assert.Equal(t, 25, items)
}

func TestStrtoNumbers(t *testing.T) {
	tests := []struct {
		in    string
		ull   uint64
		ullOK bool
		l     int32
		lOK   bool
		ul    uint32
		ulOK  bool
	}{
		{"0", 0, true, 0, true, 0, true},
		{"42", 42, true, 42, true, 42, true},
		{"+7", 7, true, 7, true, 7, true},
		{"-1", 0, false, -1, true, 0, false},
		{"-0", 0, true, 0, true, 0, true},
		{"4294967296", 4294967296, true, 0, true, 0, true},
		{"4000000000", 4000000000, true, -294967296, true, 4000000000, true},
		{"18446744073709551615", 18446744073709551615, true, 0, false, 4294967295, true},
		{"18446744073709551616", 0, false, 0, false, 0, false},
		{"9223372036854775808", 9223372036854775808, true, 0, false, 0, true},
		{"12abc", 0, false, 0, false, 0, false},
		{"12\t", 12, true, 12, true, 12, true},
		{"\t12", 12, true, 12, true, 12, true},
		{"", 0, false, 0, false, 0, false},
		{"-", 0, false, 0, false, 0, false},
		{"x", 0, false, 0, false, 0, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			ull, ok := strtoull([]byte(tt.in))
			assert.Equal(t, tt.ullOK, ok, "strtoull ok")
			if ok {
				assert.Equal(t, tt.ull, ull)
			}
			l, ok := safeStrtol([]byte(tt.in))
			assert.Equal(t, tt.lOK, ok, "strtol ok")
			if ok {
				assert.Equal(t, tt.l, l)
			}
			ul, ok := safeStrtoul([]byte(tt.in))
			assert.Equal(t, tt.ulOK, ok, "strtoul ok")
			if ok {
				assert.Equal(t, tt.ul, ul)
			}
		})
	}
}
