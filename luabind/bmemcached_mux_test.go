package luabind

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"luaserve/memcached"
	"luaserve/memcached/server"
)

// Sync ops go on the bucket's shared transport only until the session has
// a connection of its own to the server; from then on everything goes on
// that connection, in order, so a sync op sees what quiet and async
// requests before it did.
func TestBmemSessionOrderingWithSharedTransport(t *testing.T) {
	tests := []struct {
		name string
		code string
		want string
		idle int // the bucket's pooled connections after setkeepalive
	}{
		{"setQ then get", `ses:setQ(k, "q") ngx.print(ses:get(k).value)`, "q", 1},
		{"sync set, setQ, get", `ses:set(k, "a") ses:setQ(k, "b") ngx.print(ses:get(k).value)`, "b", 1},
		{"appendQ then get", `ses:set(k, "a") ses:appendQ(k, "b") ses:appendQ(k, "c") ngx.print(ses:get(k).value)`, "abc", 1},
		{"deleteQ then add", `ses:set(k, "a") ses:deleteQ(k) ngx.print(ses:add(k, "n").header.status_code, ses:get(k).value)`, "0n", 1},
		{"send then get", `ses:send(c.op_code.Set, {key = k, value = "s"}) ngx.print(ses:get(k).value)`, "s", 1},
		{"incrementQ then increment", `ses:set(k, "1") ses:incrementQ(k, 5) ngx.print(ses:increment(k, 1).value)`, "7", 1},
		{"sync only", `ses:set(k, "a") ngx.print(ses:get(k).value)`, "a", 0},
		{"noop counts a server used through the shared transport", `ses:get(k) ngx.print(#ses:noop())`, "1", 0},
		{"setkeepalive forgets it", `ses:get(k) ses:setkeepalive() ngx.print(#ses:noop())`, "0", 0},
		{"close forgets it", `ses:get(k) ses:close() ngx.print(#ses:noop())`, "0", 0},
	}
	forEachBackend(t, func(t *testing.T, b bmemBackend) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				v := newBmemVM(t, nil)
				out, err := v.run(t, b, `
					local c = require "resty.bmemcached.consts"
					local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT}:bucket():session()
					local k = "order:`+strconv.Itoa(i)+`"
					ses:delete(k)
					`+tt.code+`
					ses:setkeepalive()`)
				require.NoError(t, err)
				assert.Equal(t, tt.want, out)
				assert.Equal(t, tt.idle, v.bmemPool(b, "default").Idle())
			})
		}
	})
}

// Many VMs hammering sync ops at once share the transport's connections and
// each gets its own results, whole.
func TestBmemSharedTransportConcurrentVMs(t *testing.T) {
	const vms, requests = 6, 150
	forEachBackend(t, func(t *testing.T, b bmemBackend) {
		pools := &memcached.Pools{}
		t.Cleanup(func() { pools.Close() })
		before := serverStats(t, b)
		code := strings.NewReplacer("$HOST", b.host, "$PORT", strconv.Itoa(b.port)).Replace(`
			local app = package.loaded.mux_app
			if not app then
				local bm = require "resty.bmemcached"
				app = { bucket = bm.cluster{host = "$HOST", port = $PORT}:bucket(), cjson = require "cjson" }
				package.loaded.mux_app = app
			end
			local ses = app.bucket:session()
			local w, i = ngx.var.arg_w, tonumber(ngx.var.arg_i)
			local k = "mux:" .. w .. ":" .. i
			local val = string.rep(w, i % 7 + 1) .. i
			local s = ses:set(k, val)
			assert(s.header.status_code == 0 and s.header.opaque == 0, app.cjson.encode(s))
			ses:append(k, "+")
			local r = ses:get(k)
			local n = ses:increment("mux:ctr:" .. w, 1, i)
			local miss = ses:get(k .. ":missing")
			ses:setkeepalive()
			ngx.print(r.value, " ", n.value, " ", miss.header.status, " ", app.cjson.encode(r.header.CAS) == app.cjson.encode(s.header.CAS) and "samecas" or "newcas")`)
		proto := compile(t, "mux", code)
		errs := make(chan error, vms)
		for w := 0; w < vms; w++ {
			v := newBmemVM(t, pools)
			go func() {
				errs <- func() error {
					for i := 1; i <= requests; i++ {
						ctx := &fasthttp.RequestCtx{}
						ctx.Request.SetRequestURI(fmt.Sprintf("/?w=%d&i=%d", w, i))
						v.vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent, Start: time.Now()})
						err := v.vm.Run(proto, 10*time.Second)
						v.vm.End()
						if err != nil {
							return err
						}
						// The counter is created with initial value 1 by
						// request 1, then each request adds one.
						want := fmt.Sprintf("%s%d+ %d Key not found newcas", strings.Repeat(strconv.Itoa(w), i%7+1), i, i)
						if got := string(ctx.Response.Body()); got != want {
							return fmt.Errorf("vm %d request %d: got %q, want %q", w, i, got, want)
						}
					}
					return nil
				}()
			}()
		}
		for w := 0; w < vms; w++ {
			require.NoError(t, <-errs)
		}
		after := serverStats(t, b)
		opened := atoiT(t, after["total_connections"]) - atoiT(t, before["total_connections"])
		// The transport's connections, this test's stats connection, and
		// one for a readiness probe counted late by memcached's threads.
		assert.LessOrEqual(t, opened, memcached.DefaultConnsPerServer+2)
		for _, p := range []*memcached.Pool{newBmemVM(t, pools).bmemPool(b, "default")} {
			assert.Zero(t, p.Idle(), "sync ops check out no connection")
		}
	})
}

// A server that cannot be reached, or that dies, fails sync ops on the
// shared transport with the errors and log lines of a session's own
// connection.
func TestBmemSharedTransportDeadServer(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		refused := bmemBackend{host: "127.0.0.1", port: freePort(t)}
		msgs := map[string]string{}
		logs := map[string][]logLine{}
		for _, call := range []string{`ses:get("k")`, `ses:setQ("k", "v")`, `ses:version()`} {
			v := newBmemVM(t, nil)
			_, err := v.run(t, refused, `
				local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT}:bucket():session()
				local ok, err = pcall(function() `+call+` end)
				assert(not ok)
				error(err, 0)`)
			require.Error(t, err)
			msgs[call] = bmemErrLine(err)
			logs[call] = v.log.lines
		}
		want := "bmemcached: connect to " + refused.addr() + " failed: "
		assert.Contains(t, msgs[`ses:setQ("k", "v")`], want)
		assert.Equal(t, msgs[`ses:setQ("k", "v")`], msgs[`ses:get("k")`])
		assert.Equal(t, msgs[`ses:setQ("k", "v")`], msgs[`ses:version()`])
		assert.Equal(t, []logLine{{LogErr, "connect() failed (111: Connection refused)"}}, logs[`ses:get("k")`])
		assert.Equal(t, logs[`ses:setQ("k", "v")`], logs[`ses:get("k")`])
	})
	t.Run("dies", func(t *testing.T) {
		srv, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
		require.NoError(t, err)
		t.Cleanup(func() { srv.Close() })
		host, port := splitHostPortT(t, srv.Addr().String())
		b := bmemBackend{host: host, port: port}
		v := newBmemVM(t, nil)
		code := `
			local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT}:bucket():session()
			ngx.print(ses:set("k", "v").header.status)`
		out, err := v.run(t, b, code)
		require.NoError(t, err)
		assert.Equal(t, "No error", out)
		require.NoError(t, srv.Close())
		// The transport's connection is gone with the server: the next call
		// fails on it, naming the server, and the one after cannot connect.
		_, err = v.run(t, b, code)
		require.Error(t, err)
		assert.Contains(t, bmemErrLine(err), "bmemcached: "+b.addr())
		_, err = v.run(t, b, code)
		require.Error(t, err)
		assert.Contains(t, bmemErrLine(err), "bmemcached: connect to "+b.addr()+" failed: ")
	})
	t.Run("timeout", func(t *testing.T) {
		b := silentServer(t)
		v := newBmemVM(t, nil)
		start := time.Now()
		_, err := v.run(t, b, `
			local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT}:bucket{timeout = 100}:session()
			ses:get("k")`)
		require.Error(t, err)
		assert.Contains(t, bmemErrLine(err), "bmemcached: "+b.addr()+": timeout")
		assert.Less(t, time.Since(start), 2*time.Second)
	})
}

// bmemErrLine is the first line of a Lua error: the message without the
// traceback.
func bmemErrLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

func splitHostPortT(t testing.TB, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	require.Positive(t, i, addr)
	port, err := strconv.Atoi(addr[i+1:])
	require.NoError(t, err)
	return addr[:i], port
}
