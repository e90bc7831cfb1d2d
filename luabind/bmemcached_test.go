package luabind

import (
	"fmt"
	"luaserve/internal/mctest"
	"net"
	"path/filepath"
	"slices"
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

// bmemBackend is a memcached the tests talk to.
type bmemBackend struct {
	name string
	host string
	port int
}

func (b bmemBackend) addr() string { return net.JoinHostPort(b.host, strconv.Itoa(b.port)) }

// embeddedMemcached starts the embedded server on a free port.
func embeddedMemcached(t testing.TB, cfg server.Config) bmemBackend {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := server.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	a := srv.Addr().(*net.TCPAddr)
	return bmemBackend{name: "embedded", host: "127.0.0.1", port: a.Port}
}

// forEachBackend runs fn against the embedded server and a real memcached
// (skipped, saying why, when /usr/bin/memcached is missing).
func forEachBackend(t *testing.T, fn func(t *testing.T, b bmemBackend)) {
	t.Run("embedded", func(t *testing.T) {
		fn(t, embeddedMemcached(t, server.Config{}))
	})
	t.Run("memcached", func(t *testing.T) {
		fn(t, realMemcached(t))
	})
}

// realMemcached starts Debian's memcached on a free loopback port for the
// test (skipped, saying why, when it is not installed).
func realMemcached(t testing.TB, extra ...string) bmemBackend {
	t.Helper()
	p := mctest.Real(t, extra...)
	return bmemBackend{name: "memcached", host: "127.0.0.1", port: p.Port}
}

// bmemVM is a VM with the test's memcached pools and log.
type bmemVM struct {
	vm    *VM
	log   *testLogger
	pools *memcached.Pools
}

func newBmemVM(t testing.TB, pools *memcached.Pools) *bmemVM {
	t.Helper()
	if pools == nil {
		pools = &memcached.Pools{}
		t.Cleanup(func() { pools.Close() })
	}
	log := &testLogger{}
	vm, err := NewVM(&Options{Logger: log, Pools: pools})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	return &bmemVM{vm: vm, log: log, pools: pools}
}

// run serves one request through code, with HOST and PORT substituted.
func (v *bmemVM) run(t testing.TB, b bmemBackend, code string) (string, error) {
	t.Helper()
	code = strings.ReplaceAll(code, "$HOST", b.host)
	code = strings.ReplaceAll(code, "$PORT", strconv.Itoa(b.port))
	ctx := &fasthttp.RequestCtx{}
	v.vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent, Start: time.Now()})
	err := v.vm.Run(compile(t, "content_by_lua(nginx.conf:1)", code), 10*time.Second)
	v.vm.End()
	return string(ctx.Response.Body()), err
}

func TestBmemSeedExample(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b bmemBackend) {
		v := newBmemVM(t, nil)
		out, err := v.run(t, b, `
			local bmemcached = require "resty.bmemcached"
			local cjson = require "cjson"
			local cluster = bmemcached.cluster({ host = "$HOST", port = $PORT })
			local bucket1 = cluster:bucket()
			local ses = bucket1:session()
			local r = ses:set("a", "7")
			ngx.say(cjson.encode(r))
			r = ses:get("a")
			ses:setkeepalive()
			ngx.say(cjson.encode(r))
			ngx.say(cjson.encode(ses:get("nope")))
		`)
		require.NoError(t, err)
		t.Log(out)
		assert.NotEmpty(t, out)
	})
}

// bmemPool returns the process-wide pool a default bucket on b uses.
func (v *bmemVM) bmemPool(b bmemBackend, bucket string) *memcached.Pool {
	key := bmemPoolKey(b.addr()+"/"+bucket, "", "", DefaultSocketSettings.ConnectTimeout)
	return v.pools.Pool(key, b.addr(), nil)
}

// serverStats reads memcached's general stats over a fresh connection.
func serverStats(t testing.TB, b bmemBackend) map[string]string {
	t.Helper()
	c, err := memcached.Dial(t.Context(), b.addr(), nil)
	require.NoError(t, err)
	defer c.Close()
	st, err := c.Stats("")
	require.NoError(t, err)
	return st
}

func TestBmemForgottenConnectionsAreReleased(t *testing.T) {
	tests := []struct {
		name string
		code string
		idle int // pooled connections after the request
	}{
		// Sync ops alone go on the bucket's shared transport: the session
		// owns no connection, so there is nothing to pool.
		{"sync ops own no connection", `ses:set(k, "v")`, 0},
		{"sync ops then setkeepalive", `ses:set(k, "v") ses:setkeepalive()`, 0},
		{"clean session is pooled", `ses:setQ(k, "v") ses:noop()`, 1},
		{"setkeepalive pools", `ses:setQ(k, "v") ses:get(k) ses:setkeepalive()`, 1},
		{"pending response closes", `ses:set(k, "v") ses:send(c.op_code.Get, {key = k})`, 0},
		{"unsettled quiet request closes", `ses:setQ(k, "v")`, 0},
		{"setkeepalive drains a pending response", `ses:set(k, "v") ses:send(c.op_code.Get, {key = k}) ses:setkeepalive()`, 1},
		{"setkeepalive settles quiet requests", `ses:setQ(k, "v") ses:addQ(k, "w") ses:setkeepalive()`, 1},
		{"closed session leaves nothing", `ses:set(k, "v") ses:close()`, 0},
		{"error mid-request still releases", `ses:setQ(k, "v") ses:noop() error("handler failed")`, 1},
	}
	forEachBackend(t, func(t *testing.T, b bmemBackend) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				v := newBmemVM(t, nil)
				_, err := v.run(t, b, `
					local c = require "resty.bmemcached.consts"
					local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT}:bucket():session()
					local k = "release"
					`+tt.code)
				if strings.Contains(tt.code, "error(") {
					require.Error(t, err)
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tt.idle, v.bmemPool(b, "default").Idle())
				// Whatever the handler sent was not lost.
				out, err := v.run(t, b, `
					local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT}:bucket():session()
					ngx.print(ses:get("release").value) ses:setkeepalive()`)
				require.NoError(t, err)
				assert.Equal(t, "v", out)
			})
		}
	})
}

// A bucket at module level (per VM, as per nginx worker) costs no
// connections of its own: VMs share the process-wide pool, so the server
// sees about one connection per VM however many requests run.
func TestBmemPoolSharedAcrossVMs(t *testing.T) {
	const vms, requests = 4, 150
	forEachBackend(t, func(t *testing.T, b bmemBackend) {
		before := serverStats(t, b)
		pools := &memcached.Pools{}
		t.Cleanup(func() { pools.Close() })
		app := `
			local app = package.loaded.bmem_app
			if not app then
				local bm = require "resty.bmemcached"
				app = { bucket = bm.cluster{host = "$HOST", port = $PORT}:bucket({ pool_size = 8 }) }
				package.loaded.bmem_app = app
			end
			local ses = app.bucket:session()
			local k = "shared:" .. ngx.var.arg_i
			ses:set(k, ngx.var.arg_i)
			local r = ses:get(k)
			ses:setkeepalive()
			ngx.print(r.value)`
		errs := make(chan error, vms)
		for w := 0; w < vms; w++ {
			v := newBmemVM(t, pools)
			go func() {
				for i := 0; i < requests; i++ {
					code := strings.ReplaceAll(strings.ReplaceAll(app, "$HOST", b.host), "$PORT", strconv.Itoa(b.port))
					ctx := &fasthttp.RequestCtx{}
					ctx.Request.SetRequestURI("/?i=" + strconv.Itoa(w*1000+i))
					v.vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent, Start: time.Now()})
					err := v.vm.Run(compile(t, "app", code), 10*time.Second)
					v.vm.End()
					if err == nil && string(ctx.Response.Body()) != strconv.Itoa(w*1000+i) {
						err = fmt.Errorf("request %d answered %q", i, ctx.Response.Body())
					}
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for w := 0; w < vms; w++ {
			require.NoError(t, <-errs)
		}
		after := serverStats(t, b)
		opened := atoiT(t, after["total_connections"]) - atoiT(t, before["total_connections"])
		// One per VM, plus this test's second stats connection, plus one
		// for memcached's worker threads counting the readiness probe of
		// realMemcached after the first stats call.
		assert.LessOrEqual(t, opened, vms+2, "connections opened for %d requests", vms*requests)
		assert.LessOrEqual(t, atoiT(t, after["curr_connections"])-atoiT(t, before["curr_connections"]), vms+1)
		assert.Positive(t, opened)
	})
}

func atoiT(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "stat %q", s)
	return n
}

// silentServer accepts connections and never answers.
func silentServer(t testing.TB) bmemBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return bmemBackend{name: "silent", host: "127.0.0.1", port: l.Addr().(*net.TCPAddr).Port}
}

func TestBmemTimeouts(t *testing.T) {
	b := silentServer(t)
	tests := []struct {
		name    string
		bucket  string
		timeout time.Duration // the request's deadline
		want    string
	}{
		{"bucket timeout", `{ timeout = 100 }`, 10 * time.Second, "bmemcached: " + b.addr() + ": timeout"},
		{"request deadline stops a hung call", `{}`, 150 * time.Millisecond, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newBmemVM(t, nil)
			code := strings.NewReplacer("$HOST", b.host, "$PORT", strconv.Itoa(b.port), "$BUCKET", tt.bucket).Replace(`
				local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT}:bucket($BUCKET):session()
				ses:get("k")`)
			ctx := &fasthttp.RequestCtx{}
			v.vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent, Start: time.Now()})
			start := time.Now()
			err := v.vm.Run(compile(t, "x", code), tt.timeout)
			v.vm.End()
			require.Error(t, err)
			assert.Less(t, time.Since(start), 2*time.Second)
			if tt.want != "" {
				assert.Contains(t, err.Error(), tt.want)
			} else {
				assert.ErrorIs(t, err, ErrTimeout)
			}
		})
	}
}

func TestBmemMultiServerCluster(t *testing.T) {
	a := embeddedMemcached(t, server.Config{})
	b := embeddedMemcached(t, server.Config{})
	v := newBmemVM(t, nil)
	code := strings.NewReplacer("$A", a.addr(), "$B", b.addr()).Replace(`
		local bm = require "resty.bmemcached"
		local ses = bm.cluster({ servers = { "$A", "$B" } }):bucket():session()
		local peers, npeers = {}, 0
		for i = 1, 40 do
			local w = ses:setQ("multi:" .. i, tostring(i))
			if not peers[w.peer] then peers[w.peer] = true npeers = npeers + 1 end
		end
		for peer in pairs(peers) do assert(#ses:receive(peer) == 0) end
		for i = 1, 40 do assert(ses:get("multi:" .. i).value == tostring(i)) end
		local b = {}
		for i = 1, 40 do b[i] = { op = 0x0c, opts = { key = "multi:" .. i } } end
		ses:batch(b, { unacked_window = 4, thread_pool_size = 3 })
		for i = 1, 40 do assert(b[i].result.value == tostring(i), i) end
		ngx.say(npeers, " ", #ses:noop(), " ", #ses:stat() > 20)`)
	out, err := v.run(t, a, code)
	require.NoError(t, err)
	assert.Equal(t, "2 2 true\n", out)
	// The ring spread the keys over both servers.
	for _, s := range []bmemBackend{a, b} {
		assert.Greater(t, atoiT(t, serverStats(t, s)["curr_items"]), 5, s.addr())
	}
}

func TestBmemSASLErrors(t *testing.T) {
	b := embeddedMemcached(t, server.Config{SASLUser: "user", SASLPassword: "secret"})
	tests := []struct {
		name, cluster, bucket, want string
	}{
		{"wrong password", `user = "user", password = "nope"`, ``, "Not authenticated: " + b.addr() + ": Auth failure."},
		{"no credentials", ``, ``, "Not authenticated"},
		{"wrong bucket password", ``, `name = "user", password = "x"`, "Not authenticated: " + b.addr()},
		{"right credentials", `user = "user", password = "secret"`, ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newBmemVM(t, nil)
			out, err := v.run(t, b, `
				local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT, `+tt.cluster+`}:bucket{`+tt.bucket+`}:session()
				ngx.print(ses:set("k", "v").header.status)`)
			if tt.want == "" {
				require.NoError(t, err)
				assert.Equal(t, "No error", out)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestBmemUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mc.sock")
	srv, err := server.Start(server.Config{Addr: "unix:" + path})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	v := newBmemVM(t, nil)
	out, err := v.run(t, bmemBackend{}, `
		local ses = require("resty.bmemcached").cluster({ socket = "`+path+`" }):bucket():session()
		ses:set("u", "over unix")
		local w = ses:setQ("u2", "x")
		ngx.say(ses:get("u").value, " ", w.peer.pool)
		ses:setkeepalive()`)
	require.NoError(t, err)
	assert.Equal(t, "over unix "+path+"/default\n", out)
}

func TestBmemBuildRequests(t *testing.T) {
	full := bmemArgs{key: "k", hasKey: true, value: []byte("v"), hasValue: true, expire: 0x01020304, cas: 9, delta: 5, initial: 7}
	noValue := bmemArgs{key: "k", hasKey: true, delta: 1}
	tests := []struct {
		op     memcached.Opcode
		args   bmemArgs
		extras string // hex
		key    string
		value  string
		err    string
	}{
		{memcached.OpSet, full, "0000000001020304", "k", "v", ""},
		{memcached.OpAddQ, full, "0000000001020304", "k", "v", ""},
		{memcached.OpAppend, full, "", "k", "v", ""},
		{memcached.OpGet, full, "", "k", "", ""},
		{memcached.OpDeleteQ, full, "", "k", "", ""},
		{memcached.OpIncrement, full, "0000000000000005000000000000000701020304", "k", "", ""},
		{memcached.OpTouch, full, "01020304", "k", "", ""},
		{memcached.OpGATQ, full, "01020304", "k", "", ""},
		{memcached.OpFlush, full, "01020304", "", "", ""},
		{memcached.OpFlush, bmemArgs{}, "", "", "", ""},
		{memcached.OpNoop, full, "", "", "", ""},
		{memcached.OpStat, full, "", "k", "", ""},
		{memcached.OpSet, noValue, "", "", "", "key and value required"},
		{memcached.OpPrependQ, noValue, "", "", "", "key and value required"},
		{memcached.OpGet, bmemArgs{}, "", "", "", "key required"},
		{memcached.OpGet, bmemArgs{key: strings.Repeat("k", 251), hasKey: true}, "", "", "", "key longer than 250 bytes"},
		{0x7f, full, "", "", "", "unknown op code 127"},
	}
	for _, tt := range tests {
		t.Run(tt.op.String()+"/"+tt.err, func(t *testing.T) {
			req, msg := bmemBuild(tt.op, &tt.args, nil)
			assert.Equal(t, tt.err, msg)
			if tt.err != "" {
				return
			}
			assert.Equal(t, tt.extras, fmt.Sprintf("%x", req.Extras))
			assert.Equal(t, tt.key, req.Key)
			assert.Equal(t, tt.value, string(req.Value))
			assert.Equal(t, tt.op, req.Opcode)
		})
	}
}

func TestBmemConstsCoverTheProtocol(t *testing.T) {
	v := newBmemVM(t, nil)
	out, err := v.run(t, bmemBackend{}, `
		local c = require "resty.bmemcached.consts"
		local names = {}
		for name, code in pairs(c.op_code) do names[#names + 1] = string.format("%s=%d", name, code) end
		table.sort(names)
		ngx.say(table.concat(names, " "))
		ngx.say(c.status_desc[c.status.KeyExists], "|", c.status_desc[c.status.UnknownCommand], "|", c.status_desc[0x20])`)
	require.NoError(t, err)
	lines := strings.Split(out, "\n")
	var want []string
	for _, op := range memcached.Opcodes() {
		want = append(want, fmt.Sprintf("%s=%d", op, op))
	}
	slices.Sort(want)
	assert.Equal(t, strings.Join(want, " "), lines[0])
	assert.Equal(t, "Key exists|Unknown command|Authentication error", lines[1])
}

// Socket failures are logged as nginx logs them for a cosocket (unless
// lua_socket_log_errors is off), then raised.
func TestBmemSocketErrorsAreLogged(t *testing.T) {
	silent := silentServer(t)
	refused := bmemBackend{host: "127.0.0.1", port: freePort(t)}
	tests := []struct {
		name      string
		b         bmemBackend
		bucket    string
		logErrors bool
		want      []logLine
	}{
		{"refused", refused, `{}`, true, []logLine{{LogErr, "connect() failed (111: Connection refused)"}}},
		{"read timeout", silent, `{ timeout = 50 }`, true, []logLine{{LogErr, "lua tcp socket read timed out"}}},
		{"lua_socket_log_errors off", refused, `{}`, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newBmemVM(t, nil)
			code := strings.NewReplacer("$HOST", tt.b.host, "$PORT", strconv.Itoa(tt.b.port), "$BUCKET", tt.bucket).Replace(`
				local ses = require("resty.bmemcached").cluster{host = "$HOST", port = $PORT}:bucket($BUCKET):session()
				ses:get("k")`)
			settings := DefaultSocketSettings
			settings.LogErrors = tt.logErrors
			ctx := &fasthttp.RequestCtx{}
			v.vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent, Start: time.Now(), Socket: &settings})
			err := v.vm.Run(compile(t, "x", code), 5*time.Second)
			v.vm.End()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.b.addr())
			assert.Equal(t, tt.want, v.log.lines)
		})
	}
}
