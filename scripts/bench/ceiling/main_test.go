package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"luaserve/memcached"
	"luaserve/memcached/server"
)

const memcachedBin = "/usr/bin/memcached"

// backends are the memcached servers the route tests run against: the
// embedded one always, Debian's memcached when installed.
var backends = []struct {
	name  string
	start func(t *testing.T) string
}{
	{"embedded", startEmbedded},
	{"memcached", startMemcached},
}

func startEmbedded(t *testing.T) string {
	s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s.Addr().String()
}

func startMemcached(t *testing.T) string {
	if _, err := os.Stat(memcachedBin); err != nil {
		t.Skipf("%s is not installed (apt-get install memcached): %v", memcachedBin, err)
	}
	ports, err := FreePorts(1)
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(ports[0]), "-U", "0"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(memcachedBin, args...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // it may have exited already
		cmd.Wait()         //nolint:errcheck // killed on purpose
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		require.Less(t, i, 100, "memcached did not listen on %s: %v", addr, err)
		time.Sleep(20 * time.Millisecond)
	}
}

// serve runs the ceiling handler on an in-memory listener and returns a
// client for it.
func serve(t *testing.T, c *memcached.Client, addr string) *fasthttp.Client {
	ln := fasthttputil.NewInmemoryListener()
	h := NewHandler(c, addr)
	t.Cleanup(func() { h.Close() })
	srv := &fasthttp.Server{Handler: h.Serve, NoDefaultContentType: true}
	go srv.Serve(ln)                     //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck // test teardown
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

// checkSeed checks a seed route's answer is resty.bmemcached's result for a
// stored value.
func checkSeed(value string) func(t *testing.T, got []byte) {
	return func(t *testing.T, got []byte) {
		var r struct {
			Header struct {
				CAS        []int  `json:"CAS"`
				StatusCode int    `json:"status_code"`
				Status     string `json:"status"`
			} `json:"header"`
			Value string `json:"value"`
		}
		require.NoError(t, json.Unmarshal(got, &r), "%s", got)
		assert.Equal(t, value, r.Value)
		assert.Equal(t, "No error", r.Header.Status)
		assert.Len(t, r.Header.CAS, 8)
		assert.NotEqual(t, make([]int, 8), r.Header.CAS, "a stored item has a CAS")
		assert.Equal(t, byte('\n'), got[len(got)-1])
	}
}

func TestRoutes(t *testing.T) {
	body, err := os.ReadFile("../wrk/body.json")
	require.NoError(t, err)
	require.Len(t, body, 1024, "the JSON route's body is 1 KB")
	const keys, size = 50, 1024
	tests := []struct {
		name, method, uri string
		body              []byte
		status            int
		check             func(t *testing.T, got []byte)
	}{
		{"hello", "GET", "/hello", nil, 200, func(t *testing.T, got []byte) {
			assert.Equal(t, "hello\n", string(got))
		}},
		{"seed", "GET", "/test_b1?key=a&value=7", nil, 200, checkSeed("7")},
		{"seed over a pooled connection", "GET", "/test_b1_pool?key=p&value=8", nil, 200, checkSeed("8")},
		{"seed escapes the value", "GET", "/test_b1?key=q&value=%22a%2Fb%5C%0A", nil, 200, func(t *testing.T, got []byte) {
			assert.Contains(t, string(got), `"value":"\"a\/b\\\n"}`)
		}},
		{"seed without value", "GET", "/test_b1?key=a", nil, 400, nil},
		{"seed with a key over 250 bytes", "GET", "/test_b1?key=" + strings.Repeat("k", 251) + "&value=1", nil, 500, nil},
		{"pooled seed without value", "GET", "/test_b1_pool?key=a", nil, 400, nil},
		{"pooled seed with a key over 250 bytes", "GET", "/test_b1_pool?key=" + strings.Repeat("k", 251) + "&value=1", nil, 500, nil},
		{"pooled seed after an error", "GET", "/test_b1_pool?key=p2&value=9", nil, 200, checkSeed("9")},
		{"read first", "GET", "/read?k=0", nil, 200, func(t *testing.T, got []byte) {
			assert.Equal(t, Value(0, size), got)
		}},
		{"read last", "GET", "/read?k=" + strconv.Itoa(keys-1), nil, 200, func(t *testing.T, got []byte) {
			assert.Equal(t, Value(keys-1, size), got)
		}},
		{"read miss", "GET", "/read?k=" + strconv.Itoa(keys), nil, 404, nil},
		{"read without k", "GET", "/read", nil, 400, nil},
		{"json", "POST", "/json", body, 200, func(t *testing.T, got []byte) {
			var in, out map[string]any
			require.NoError(t, json.Unmarshal(body, &in))
			require.NoError(t, json.Unmarshal(got, &out), "%s", got)
			assert.Equal(t, in["count"].(float64)+1, out["count"])
			assert.Equal(t, true, out["processed"])
			in["count"], in["processed"] = out["count"], out["processed"]
			assert.Equal(t, in, out, "every other field survives")
		}},
		{"json not JSON", "POST", "/json", []byte("{"), 400, nil},
		{"json GET", "GET", "/json", nil, 405, nil},
		{"unknown", "GET", "/nope", nil, 404, nil},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr := b.start(t)
			c, err := memcached.New(memcached.Config{Servers: []string{addr}})
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			require.NoError(t, Preload(c, keys, size))
			hc := serve(t, c, addr)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
					defer fasthttp.ReleaseRequest(req)
					defer fasthttp.ReleaseResponse(resp)
					req.SetRequestURI("http://ceiling" + tt.uri)
					req.Header.SetMethod(tt.method)
					req.SetBody(tt.body)
					require.NoError(t, hc.DoTimeout(req, resp, 5*time.Second))
					require.Equal(t, tt.status, resp.StatusCode(), "%s", resp.Body())
					if tt.check != nil {
						tt.check(t, resp.Body())
					}
				})
			}
		})
	}
}

func TestAppendSeedJSON(t *testing.T) {
	tests := []struct {
		name string
		item memcached.Item
		want string
	}{
		{"plain", memcached.Item{Value: []byte("7"), CAS: 1},
			`{"header":{"opaque":0,"CAS":[0,0,0,0,0,0,0,1],"status_code":0,"status":"No error","type":0},"value":"7"}` + "\n"},
		{"CAS bytes big-endian", memcached.Item{Value: []byte(""), CAS: 0x00a485ee740110d5},
			`{"header":{"opaque":0,"CAS":[0,164,133,238,116,1,16,213],"status_code":0,"status":"No error","type":0},"value":""}` + "\n"},
		{"escapes as cjson", memcached.Item{Value: []byte("a\"\\/\n\r\t\x01\x7fé")},
			`{"header":{"opaque":0,"CAS":[0,0,0,0,0,0,0,0],"status_code":0,"status":"No error","type":0},"value":"a\"\\\/\n\r\t\u0001\u007fé"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, string(AppendSeedJSON([]byte("x"), &tt.item))[1:])
		})
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		i, size int
		prefix  string
	}{
		{0, 1024, "0bcdefghijklmnop0rst"},
		{9999, 1024, "9999efghijklmnop9999"},
		{7, 3, "7bc"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.i), func(t *testing.T) {
			v := Value(tt.i, tt.size)
			assert.Len(t, v, tt.size)
			assert.True(t, bytes.HasPrefix(v, []byte(tt.prefix)), "%q", v[:min(len(v), 24)])
		})
	}
	assert.NotEqual(t, Value(1, 64), Value(2, 64))
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(8)
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, p := range ports {
		assert.False(t, seen[p], "port %d twice", p)
		seen[p] = true
		ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p))
		require.NoError(t, err, "port %d is free again", p)
		ln.Close()
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"bad flag", []string{"-nope"}, 2, ""},
		{"preload without memcached", []string{"-memcached", "127.0.0.1:1", "-preload", "1"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			assert.Equal(t, tt.code, run(tt.args, &out, &errb), "%s", errb.String())
			assert.Equal(t, tt.stdout, out.String())
		})
	}
	var out bytes.Buffer
	require.Equal(t, 0, run([]string{"-free-ports", "3"}, &out, &bytes.Buffer{}))
	assert.Regexp(t, `^\d+ \d+ \d+\n$`, out.String())
}

// FuzzAppendJSONString checks that what the seed route writes is JSON that
// decodes back to the value.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "7", `a"b\c/d`, "\x00\x1f\x7f", "é✓"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		if !utf8.Valid(s) {
			t.Skip("JSON strings are UTF-8")
		}
		enc := appendJSONString(nil, s)
		var got string
		require.NoError(t, json.Unmarshal(enc, &got), "%q", enc)
		assert.Equal(t, string(s), got)
	})
}

func BenchmarkAppendSeedJSON(b *testing.B) {
	it := &memcached.Item{Value: []byte("value-of-some-length"), CAS: 123456789}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendSeedJSON(buf[:0], it)
	}
}

// BenchmarkHandler serves each route straight from a RequestCtx (no HTTP
// sockets) against the embedded memcached, to show what one request of the
// ceiling allocates.
func BenchmarkHandler(b *testing.B) {
	s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
	require.NoError(b, err)
	defer s.Close()
	addr := s.Addr().String()
	c, err := memcached.New(memcached.Config{Servers: []string{addr}})
	require.NoError(b, err)
	defer c.Close()
	require.NoError(b, Preload(c, 100, 1024))
	h := NewHandler(c, addr)
	defer h.Close()
	body, err := os.ReadFile("../wrk/body.json")
	require.NoError(b, err)
	for _, bm := range []struct {
		name, method, uri string
		body              []byte
	}{
		{"hello", "GET", "/hello", nil},
		{"seed", "GET", "/test_b1?key=k1&value=v1", nil},
		{"seed_pool", "GET", "/test_b1_pool?key=k1&value=v1", nil},
		{"read", "GET", "/read?k=42", nil},
		{"json", "POST", "/json", body},
	} {
		b.Run(bm.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(bm.method)
			ctx.Request.SetRequestURI(bm.uri)
			ctx.Request.SetBody(bm.body)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				h.Serve(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("%s: %d %s", bm.uri, ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
