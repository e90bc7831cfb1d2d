package memcached_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/internal/mctest"
	"luaserve/memcached"
	"luaserve/memcached/server"
)

// backend starts one memcached-compatible server for a test and returns its
// address; it stops it at test end (t.Cleanup) or skips the test.
type backend struct {
	name  string
	start func(t *testing.T) string
}

// backends is the list every behaviour test runs against: a real memcached
// and the embedded server. A difference between them is a bug in the
// embedded server.
var backends = []backend{
	{"real", func(t *testing.T) string { return mctest.Real(t).Addr }},
	{"embedded", func(t *testing.T) string {
		s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s.Addr().String()
	}},
}

func forEachBackend(t *testing.T, fn func(t *testing.T, c *memcached.Client)) {
	for _, b := range backends {
		for _, proto := range []memcached.Protocol{memcached.Binary, memcached.Text} {
			t.Run(b.name+"/"+proto.String(), func(t *testing.T) {
				addr := b.start(t)
				c, err := memcached.New(memcached.Config{Servers: []string{addr}, Protocol: proto})
				require.NoError(t, err)
				t.Cleanup(func() { c.Close() })
				fn(t, c)
			})
		}
	}
}

// TestBehaviour is the client's contract, one row per behaviour, each row on
// fresh keys so rows stay independent.
func TestBehaviour(t *testing.T) {
	rows := []struct {
		name string
		run  func(t *testing.T, c *memcached.Client, k string)
	}{
		{"get miss", func(t *testing.T, c *memcached.Client, k string) {
			_, err := c.Get(k)
			assert.ErrorIs(t, err, memcached.ErrCacheMiss)
		}},
		{"set then get keeps value and flags", func(t *testing.T, c *memcached.Client, k string) {
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("hello"), Flags: 42}))
			it, err := c.Get(k)
			require.NoError(t, err)
			assert.Equal(t, "hello", string(it.Value))
			assert.EqualValues(t, 42, it.Flags)
			assert.NotZero(t, it.CAS)
		}},
		{"empty value", func(t *testing.T, c *memcached.Client, k string) {
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: nil}))
			it, err := c.Get(k)
			require.NoError(t, err)
			assert.Empty(t, it.Value)
		}},
		{"binary-safe value", func(t *testing.T, c *memcached.Client, k string) {
			v := []byte("a\r\nEND\r\n\x00\xff")
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: v}))
			it, err := c.Get(k)
			require.NoError(t, err)
			assert.Equal(t, v, it.Value)
		}},
		{"add on existing is not stored", func(t *testing.T, c *memcached.Client, k string) {
			require.NoError(t, c.Add(&memcached.Item{Key: k, Value: []byte("1")}))
			assert.ErrorIs(t, c.Add(&memcached.Item{Key: k, Value: []byte("2")}), memcached.ErrNotStored)
		}},
		{"replace on missing is not stored", func(t *testing.T, c *memcached.Client, k string) {
			assert.ErrorIs(t, c.Replace(&memcached.Item{Key: k, Value: []byte("1")}), memcached.ErrNotStored)
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("1")}))
			require.NoError(t, c.Replace(&memcached.Item{Key: k, Value: []byte("2")}))
		}},
		{"append and prepend", func(t *testing.T, c *memcached.Client, k string) {
			assert.ErrorIs(t, c.Append(&memcached.Item{Key: k, Value: []byte("x")}), memcached.ErrNotStored)
			assert.ErrorIs(t, c.Prepend(&memcached.Item{Key: k, Value: []byte("x")}), memcached.ErrNotStored)
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("mid")}))
			require.NoError(t, c.Append(&memcached.Item{Key: k, Value: []byte(">")}))
			require.NoError(t, c.Prepend(&memcached.Item{Key: k, Value: []byte("<")}))
			it, err := c.Get(k)
			require.NoError(t, err)
			assert.Equal(t, "<mid>", string(it.Value))
		}},
		{"compare and swap", func(t *testing.T, c *memcached.Client, k string) {
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("v1")}))
			it, err := c.Get(k)
			require.NoError(t, err)
			stale := *it
			it.Value = []byte("v2")
			require.NoError(t, c.CompareAndSwap(it))
			stale.Value = []byte("v3")
			assert.ErrorIs(t, c.CompareAndSwap(&stale), memcached.ErrCASConflict)
			require.NoError(t, c.Delete(k))
			assert.ErrorIs(t, c.CompareAndSwap(&stale), memcached.ErrCacheMiss)
		}},
		{"delete", func(t *testing.T, c *memcached.Client, k string) {
			assert.ErrorIs(t, c.Delete(k), memcached.ErrCacheMiss)
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("1")}))
			require.NoError(t, c.Delete(k))
			_, err := c.Get(k)
			assert.ErrorIs(t, err, memcached.ErrCacheMiss)
		}},
		{"increment and decrement", func(t *testing.T, c *memcached.Client, k string) {
			_, err := c.Increment(k, 1)
			assert.ErrorIs(t, err, memcached.ErrCacheMiss)
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("10")}))
			n, err := c.Increment(k, 5)
			require.NoError(t, err)
			assert.EqualValues(t, 15, n)
			n, err = c.Decrement(k, 100)
			require.NoError(t, err)
			assert.EqualValues(t, 0, n, "decrement stops at zero")
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("18446744073709551615")}))
			n, err = c.Increment(k, 2)
			require.NoError(t, err)
			assert.EqualValues(t, 1, n, "increment wraps at 2^64")
		}},
		{"increment non-numeric", func(t *testing.T, c *memcached.Client, k string) {
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("abc")}))
			_, err := c.Increment(k, 1)
			assert.ErrorIs(t, err, memcached.ErrNonNumeric)
			// The connection survives an error reply.
			_, err = c.Get(k)
			assert.NoError(t, err)
		}},
		{"touch and get-and-touch", func(t *testing.T, c *memcached.Client, k string) {
			assert.ErrorIs(t, c.Touch(k, 10), memcached.ErrCacheMiss)
			_, err := c.GetAndTouch(k, 10)
			assert.ErrorIs(t, err, memcached.ErrCacheMiss)
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("t"), Flags: 7}))
			require.NoError(t, c.Touch(k, 100))
			it, err := c.GetAndTouch(k, 100)
			require.NoError(t, err)
			assert.Equal(t, "t", string(it.Value))
			assert.EqualValues(t, 7, it.Flags)
		}},
		{"expiry in the past removes the item", func(t *testing.T, c *memcached.Client, k string) {
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("1"), Expiration: -1}))
			_, err := c.Get(k)
			assert.ErrorIs(t, err, memcached.ErrCacheMiss)
		}},
		{"get multi", func(t *testing.T, c *memcached.Client, k string) {
			keys := []string{k + "a", k + "b", k + "c"}
			require.NoError(t, c.Set(&memcached.Item{Key: keys[0], Value: []byte("A")}))
			require.NoError(t, c.Set(&memcached.Item{Key: keys[2], Value: []byte("C"), Flags: 3}))
			items, err := c.GetMulti(keys)
			require.NoError(t, err)
			require.Len(t, items, 2)
			assert.Equal(t, "A", string(items[keys[0]].Value))
			assert.Equal(t, "C", string(items[keys[2]].Value))
			assert.EqualValues(t, 3, items[keys[2]].Flags)
		}},
		{"set multi reports only the failed items", func(t *testing.T, c *memcached.Client, k string) {
			items := []*memcached.Item{
				{Key: k + "a", Value: []byte("A")},
				{Key: k + "big", Value: make([]byte, 2<<20)},
				{Key: k + "c", Value: []byte("C"), Flags: 9},
			}
			failed, err := c.SetMulti(items)
			require.NoError(t, err)
			require.Len(t, failed, 1)
			assert.ErrorIs(t, failed[k+"big"], memcached.ErrValueTooLarge)
			got, err := c.GetMulti([]string{k + "a", k + "big", k + "c"})
			require.NoError(t, err)
			require.Len(t, got, 2)
			assert.Equal(t, "C", string(got[k+"c"].Value))
			assert.EqualValues(t, 9, got[k+"c"].Flags)
		}},
		{"malformed keys are refused before sending", func(t *testing.T, c *memcached.Client, k string) {
			bad := []string{"", strings.Repeat("k", 251)}
			if c.Protocol() == memcached.Text {
				bad = append(bad, "with space", "ctl\x01", "nl\n", "del\x7f")
			}
			for _, bad := range bad {
				_, err := c.Get(bad)
				assert.ErrorIs(t, err, memcached.ErrMalformedKey, "%q", bad)
			}
			require.NoError(t, c.Set(&memcached.Item{Key: strings.Repeat("k", 250), Value: []byte("ok")}))
		}},
		{"value too large", func(t *testing.T, c *memcached.Client, k string) {
			err := c.Set(&memcached.Item{Key: k, Value: make([]byte, 2<<20)})
			assert.ErrorIs(t, err, memcached.ErrValueTooLarge)
			require.NoError(t, c.Set(&memcached.Item{Key: k, Value: []byte("after")}))
		}},
		{"version and stats", func(t *testing.T, c *memcached.Client, k string) {
			v, err := c.Version()
			require.NoError(t, err)
			require.Len(t, v, 1)
			for _, s := range v {
				assert.Regexp(t, `^\d+\.\d+`, s)
			}
			st, err := c.Stats()
			require.NoError(t, err)
			for _, s := range st {
				assert.NotEmpty(t, s["pid"])
				assert.NotEmpty(t, s["curr_connections"])
			}
		}},
	}
	forEachBackend(t, func(t *testing.T, c *memcached.Client) {
		for i, r := range rows {
			t.Run(r.name, func(t *testing.T) { r.run(t, c, fmt.Sprintf("bt%d-%d", i, time.Now().UnixNano())) })
		}
		t.Run("flush all", func(t *testing.T) {
			require.NoError(t, c.Set(&memcached.Item{Key: "flushme", Value: []byte("1")}))
			require.NoError(t, c.FlushAll())
			_, err := c.Get("flushme")
			assert.ErrorIs(t, err, memcached.ErrCacheMiss)
		})
	})
}

// TestBehaviourBinaryKeysMayHoldSpaces: the binary protocol frames keys by
// length, so only the text protocol refuses spaces.
func TestBehaviourBinaryKeysMayHoldSpaces(t *testing.T) {
	p := mctest.Real(t)
	c, err := memcached.New(memcached.Config{Servers: []string{p.Addr}})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Set(&memcached.Item{Key: "a key", Value: []byte("v")}))
	it, err := c.Get("a key")
	require.NoError(t, err)
	assert.Equal(t, "v", string(it.Value))
	var se *memcached.StatusError
	_, err = c.Get("missing key")
	require.True(t, errors.As(err, &se))
	assert.Equal(t, memcached.StatusKeyNotFound, se.Status)
	assert.Equal(t, "Not found", se.Body)
}
