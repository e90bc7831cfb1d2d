package luabind

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"luaserve/internal/mctest"
	"luaserve/memcached"
	"luaserve/memcached/server"
)

type rmcBackend struct {
	name string
	port int
}

// rmcMemcachedBin is Debian's memcached. luaserve/memcached/internal/mctest
// cannot be imported from here (internal), hence the small starter below.
const rmcMemcachedBin = "/usr/bin/memcached"

// rmcStartMemcached starts a real memcached with args and waits until dial
// (network, addr) connects; it is killed when the test ends. The test is
// skipped when memcached is not installed.
func rmcStartMemcached(t testing.TB, network, addr string, args ...string) {
	t.Helper()
	if _, err := os.Stat(rmcMemcachedBin); err != nil {
		t.Skipf("%s not installed (apt-get install memcached): %v", rmcMemcachedBin, err)
	}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(rmcMemcachedBin, args...)
	// memcached's stderr is left out: its TLS build logs harmless accept()
	// retries there.
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // may be gone already
		<-exited
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("memcached %v exited early: %v", args, err)
		default:
		}
		if c, err := net.DialTimeout(network, addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("memcached %v not accepting on %s after 5s", args, addr)
}

// rmcRealTCP starts a real memcached on a free loopback port.
func rmcRealTCP(t testing.TB, extra ...string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0"}, extra...)
	rmcStartMemcached(t, "tcp", "127.0.0.1:"+strconv.Itoa(port), args...)
	return port
}

// rmcBackends starts a real memcached (skipped with a message when it is not
// installed) and the embedded server: every behaviour case runs on both.
func rmcBackends(t *testing.T) []rmcBackend {
	t.Helper()
	var bs []rmcBackend
	if _, err := os.Stat(rmcMemcachedBin); err == nil {
		bs = append(bs, rmcBackend{"memcached", rmcRealTCP(t)})
	} else {
		t.Logf("real memcached not installed (%v): running against the embedded server only", err)
	}
	s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	bs = append(bs, rmcBackend{"embedded", s.Addr().(*net.TCPAddr).Port})
	return bs
}

// rmcEnv is a VM that serves requests one after another, with pools that
// outlive it.
type rmcEnv struct {
	module string // what `memcached` is required as
	vm     *VM
	log    *testLogger
	socket *SocketSettings
}

func newRmcEnv(t testing.TB, pools *memcached.Pools) *rmcEnv {
	t.Helper()
	if pools == nil {
		pools = &memcached.Pools{}
		t.Cleanup(func() { pools.Close() })
	}
	log := &testLogger{}
	vm, err := NewVM(&Options{Logger: log, Pools: pools})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	s := DefaultSocketSettings
	return &rmcEnv{module: "resty.memcached", vm: vm, log: log, socket: &s}
}

// rmcPureLua is Debian's lua-nginx-memcached: lua-resty-memcached's own Lua
// code, which runs over ngx.socket.tcp.
const rmcPureLua = "/usr/share/lua/5.1/nginx/memcached.lua"

// newPureLuaEnv is an rmcEnv whose `memcached` is the original library, or
// skips the test when it cannot run here.
func newPureLuaEnv(t testing.TB) *rmcEnv {
	t.Helper()
	if _, err := os.Stat(rmcPureLua); err != nil {
		t.Skipf("%s not installed (apt-get install lua-nginx-memcached): %v", rmcPureLua, err)
	}
	log := &testLogger{}
	vm, err := NewVM(&Options{Logger: log, Pools: &memcached.Pools{}, PackagePath: filepath.Dir(filepath.Dir(rmcPureLua)) + "/?.lua;;"})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	if err := vm.L.DoString(`assert(ngx.socket and ngx.socket.tcp)`); err != nil {
		t.Skip("ngx.socket.tcp is not available: the pure-Lua library cannot run")
	}
	s := DefaultSocketSettings
	return &rmcEnv{module: "nginx.memcached", vm: vm, log: log, socket: &s}
}

// run serves one request through code (with memcached, HOST and PORT
// defined) and returns the body.
func (e *rmcEnv) run(t testing.TB, port int, code string) string {
	t.Helper()
	body, err := e.runErr(t, port, code, 10*time.Second)
	require.NoError(t, err)
	return body
}

func (e *rmcEnv) runErr(t testing.TB, port int, code string, timeout time.Duration) (string, error) {
	t.Helper()
	prelude := fmt.Sprintf("local memcached = require '%s'; local HOST, PORT = '127.0.0.1', %d; ", e.module, port)
	ctx := &fasthttp.RequestCtx{}
	e.vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent, Start: time.Now(), Socket: e.socket})
	err := e.vm.Run(compile(t, "content_by_lua(nginx.conf:1)", prelude+code), timeout)
	e.vm.End()
	return string(ctx.Response.Body()), err
}

// rmcClosedSend is what lua-nginx-module logs for a send on a closed
// cosocket, which the library does on every call after a failure.
var rmcClosedSend = logLine{LogErr, "attempt to send data on a closed socket: u:0000000000000000, c:0000000000000000"}

// firstLog returns the first log line and checks that any others are
// rmcClosedSend.
func (e *rmcEnv) firstLog(t *testing.T) logLine {
	t.Helper()
	require.NotEmpty(t, e.log.lines)
	for _, l := range e.log.lines[1:] {
		assert.Equal(t, rmcClosedSend, l)
	}
	return e.log.lines[0]
}

func (e *rmcEnv) logged() string {
	var b strings.Builder
	for _, l := range e.log.lines {
		fmt.Fprintf(&b, "[%d] %s\n", l.level, l.msg)
	}
	return b.String()
}

// rmcConnect opens memc on HOST:PORT and flushes it.
const rmcConnect = `
local memc = assert(memcached:new())
memc:set_timeout(2000)
assert(memc:connect(HOST, PORT))
assert(memc:flush_all())
local function show(...)
	local t = {...}
	local n = select('#', ...)
	for i = 1, n do t[i] = type(t[i]) == "string" and string.format("%q", t[i]) or tostring(t[i]) end
	ngx.say(table.concat(t, " ", 1, n))
end
`

// rmcCases run on the Go-native module; those not marked native also run
// on Debian's copy of the original pure-Lua library (v0.13, before
// pipelines), which must answer the same.
var rmcCases = []struct {
	name, code, want string
	native           bool
}{
	{"synopsis", `
		local memc, err = memcached:new()
		memc:set_timeout(1000)
		local ok, err = memc:connect("127.0.0.1", PORT)
		if not ok then ngx.say("failed to connect: ", err) return end
		local ok, err = memc:flush_all()
		if not ok then ngx.say("failed to flush all: ", err) return end
		local ok, err = memc:set("dog", 32)
		if not ok then ngx.say("failed to set dog: ", err) return end
		local res, flags, err = memc:get("dog")
		if err then ngx.say("failed to get dog: ", err) return end
		if not res then ngx.say("dog not found") return end
		ngx.say("dog: ", res)
		local ok, err = memc:set_keepalive(10000, 100)
		if not ok then ngx.say("cannot set keepalive: ", err) return end
		ngx.say(memc:get("dog"))
	`, "dog: 32\nnilnilclosed\n", false},
	{"store family", rmcConnect + `
		show(memc:set("k", "v", 0, 7))
		show(memc:get("k"))
		show(memc:add("k", "w"))
		show(memc:add("k2", "w"))
		show(memc:replace("nope", "x"))
		show(memc:replace("k", "x", 0, 3))
		show(memc:append("k", "-end"))
		show(memc:prepend("k", "start-"))
		show(memc:get("k"))
		show(memc:append("nope", "x"))
		show(memc:prepend("nope", "x"))
		show(memc:set("t", {"a ", {"kind of"}, " animal", 1}))
		show(memc:get("t"))
		show(memc:set("n", 3.5))
		show(memc:get("n"))
		show(memc:set("e", ""))
		show(memc:get("e"))
	`, `1
"v" "7"
nil "NOT_STORED"
1
nil "NOT_STORED"
1
1
1
"start-x-end" "3"
nil "NOT_STORED"
nil "NOT_STORED"
1
"a kind of animal1" "0"
1
"3.5" "0"
1
"" "0"
`, false},
	{"get and gets", rmcConnect + `
		show(memc:get("missing"))
		show(memc:gets("missing"))
		assert(memc:set("a", "1", 0, 2))
		local v, f, cas = memc:gets("a")
		show(v, f, type(cas), cas:match("^%d+$") ~= nil)
		show(memc:cas("a", "2", cas))
		show(memc:cas("a", "3", cas))
		show(memc:cas("missing", "3", cas))
		local v, f, cas2 = memc:gets("a")
		show(v, f, cas2 ~= cas)
		show(memc:cas("a", {"x", "y"}, cas2, 0, 9))
		show(memc:get("a"))
	`, `nil nil nil
nil nil nil nil
"1" "2" "string" true
1
nil "EXISTS"
nil "NOT_FOUND"
"2" "0" true
1
"xy" "9"
`, true},
	{"multi get", rmcConnect + `
		assert(memc:set("a", "1"))
		assert(memc:set("b", "22", 0, 5))
		local res = assert(memc:get({"a", "missing", "b"}))
		local keys = {}
		for k, v in pairs(res) do keys[#keys+1] = k .. "=" .. v[1] .. "/" .. v[2] .. "/" .. #v end
		table.sort(keys)
		ngx.say(table.concat(keys, " "))
		local res = assert(memc:gets({"b"}))
		show(res.b[1], res.b[2], res.b[3]:match("^%d+$") ~= nil, #res.b)
		local res, err = memc:get({})
		show(next(res), err, select('#', memc:get({})))
		show(next(memc:get({"missing"})))
	`, `a=1/0/2 b=22/5/2
"22" "5" true 3
nil nil 2
nil
`, false},
	{"touch delete incr decr", rmcConnect + `
		assert(memc:set("n", 32))
		show(memc:touch("n", 100))
		show(memc:touch("missing", 100))
		show(memc:incr("n", 1))
		show(memc:decr("n", 3))
		show(memc:decr("n", 100))
		show(memc:incr("missing", 1))
		assert(memc:set("s", "abc"))
		local v, err = memc:incr("s", 1)
		show(v, err:match("^CLIENT_ERROR") ~= nil)
		show(memc:delete("n"))
		show(memc:delete("n"))
		show(memc:get("n"))
	`, `1
nil "NOT_FOUND"
"33"
"30"
"0"
nil "NOT_FOUND"
nil true
1
nil "NOT_FOUND"
nil nil nil
`, false},
	{"stats version verbosity", rmcConnect + `
		local lines = assert(memc:stats())
		local all = #lines > 5
		for _, l in ipairs(lines) do if not l:match("^STAT %S+ ") then all = false end end
		show(all)
		local ver = assert(memc:version())
		show(ver:match("^%d+%.%d+%.%d+") ~= nil)
		show(memc:verbosity(1))
		show(memc:verbosity(0))
		show(memc:flush_all(0))
		show(memc:flush_all())
	`, "true\ntrue\n1\n1\n1\n1\n", false},
	{"server errors", rmcConnect + `
		local long = string.rep("k", 251)
		show(memc:get(long))
		show(memc:get({"a", long}))
		show(memc:set("big", string.rep("x", 1024 * 1024 + 1)))
		show(memc:get("big"))
		show(memc:set("ok", "v"))
		show(memc:incr("ok", "x"))
		show(memc:touch("ok", "x"))
		show(memc:get("ok"))
	`, `nil nil "CLIENT_ERROR bad command line format"
nil "CLIENT_ERROR bad command line format"
nil "SERVER_ERROR object too large for cache"
nil nil nil
1
nil "CLIENT_ERROR invalid numeric delta argument"
nil "CLIENT_ERROR invalid exptime argument"
"v" "0"
`, false},
	{"argument errors", rmcConnect + `
		local function try(f, ...)
			local ok, err = pcall(f, memc, ...)
			ngx.say(ok, " ", (tostring(err):gsub("^.-:%d+: ", "")))
		end
		try(memc.set, "k", nil)
		try(memc.set, "k", true)
		try(memc.touch, "k")
		try(memc.incr, "k")
		try(memc.verbosity)
		try(memc.set, "k", "v", {})
		try(memc.cas, "k", "v")
		try(memc.set, "k", {"a", true})
		try(memc.set, "k", {"a", {{}, 2, {false}}})
		show(memc:set("k", "v", "0", "1"))
		show(memc:get("k"))
	`, `false bad argument #1 to 'strlen' (string expected, got nil)
false bad argument #1 to 'strlen' (string expected, got boolean)
false attempt to concatenate local 'exptime' (a nil value)
false attempt to concatenate local 'value' (a nil value)
false attempt to concatenate local 'level' (a nil value)
false attempt to concatenate local 'exptime' (a table value)
false attempt to concatenate local 'cas_uniq' (a nil value)
false invalid value (boolean) at index 2 in table for 'concat'
false invalid value (boolean) at index 1 in table for 'concat'
1
"v" "1"
`, false},
	{"quit", rmcConnect + `
		show(memc:quit())
		ngx.sleep(0.05)
		-- Sending to a socket the server has shut can also draw a reset.
		local v, f, err = memc:get("x")
		show(v, f, err == "closed" or err == "connection reset by peer")
		-- OpenResty closed only the reading side: this send fails.
		show(memc:get("x"))
	`, "1\nnil nil true\nnil nil \"broken pipe\"\n", false},
	{"not initialized and closed", `
		show = function(...) local t = {...} for i = 1, select('#', ...) do t[i] = tostring(t[i]) end ngx.say(table.concat(t, " ", 1, select('#', ...))) end
		show(memcached.get(memcached, "x"))
		show(memcached:gets("x"))
		show(memcached:get({"x"}))
		show(memcached:set("x", 1))
		show(memcached:connect(HOST, PORT))
		show(memcached:set_keepalive())
		show(memcached:get_reused_times())
		show(memcached:close())
		show(memcached:set_timeout(1))
		show(memcached:init_pipeline())
		show(memcached:commit_pipeline())
		local memc = memcached:new()
		show(memc:get("x"))
		show(memc:set("x", 1))
		show(memc:set_keepalive())
		show(memc:get_reused_times())
		show(memc:close())
		show(memc:sslhandshake())
		assert(memc:connect(HOST, PORT))
		show(memc:close())
		show(memc:close())
		show(memc:incr("x", 1))
		assert(memc:connect(HOST, PORT))
		show(memc:set_keepalive())
		show(memc:set_keepalive())
		show(memc:get_reused_times())
		show(memcached:new{key_transform = {ngx.escape_uri}})
		show(memcached._VERSION)
	`, `nil nil not initialized
nil nil nil not initialized
nil not initialized
nil not initialized
nil not initialized
nil not initialized
nil not initialized
nil not initialized
nil not initialized
not initialized
nil not initialized
nil nil closed
nil closed
nil closed
nil closed
nil closed
nil closed
1
nil closed
nil closed
1
nil closed
nil closed
nil expecting key_transform = { escape, unescape } table
0.17
`, true},
	{"key escaping", rmcConnect + `
		local keys = {"a b", "100%", "/x?y=z&w", "日本語", "tab\tnl\n", "+plus"}
		for i, k in ipairs(keys) do assert(memc:set(k, "v" .. i)) end
		for i, k in ipairs(keys) do show(k, memc:get(k)) end
		local res = assert(memc:get(keys))
		for i, k in ipairs(keys) do show(res[k] and res[k][1]) end
		local raw = memcached:new{key_transform = {function(k) return k end, function(k) return k end}}
		raw:set_timeout(2000)
		assert(raw:connect(HOST, PORT))
		show(raw:get("a%20b"))
		show(raw:get("100%25"))
		show(raw:get("%E6%97%A5%E6%9C%AC%E8%AA%9E"))
		show(raw:get("a b"))
	`, `"a b" "v1" "0"
"100%" "v2" "0"
"/x?y=z&w" "v3" "0"
"日本語" "v4" "0"
"tab\9nl\
" "v5" "0"
"+plus" "v6" "0"
"v1"
"v2"
"v3"
"v4"
"v5"
"v6"
"v1" "0"
"v2" "0"
"v4" "0"
nil nil nil
`, false},
	{"key_transform", rmcConnect + `
		local calls = 0
		local pre = memcached:new{key_transform = {
			function(k) calls = calls + 1 return "pre:" .. k end,
			function(k) return (k:gsub("^pre:", "")) .. "!" end,
		}}
		pre:set_timeout(2000)
		assert(pre:connect(HOST, PORT))
		show(pre:set("k", "v"))
		show(pre:get("k"))
		local raw = memcached:new{key_transform = {tostring, tostring}}
		assert(raw:connect(HOST, PORT))
		show(raw:get("pre:k"))
		local res = assert(pre:get({"k", "other"}))
		show(res["k!"][1], res.k)
		show(calls)
		local bad = memcached:new{key_transform = {function() return nil end, tostring}}
		assert(bad:connect(HOST, PORT))
		local ok, err = pcall(bad.get, bad, "x")
		show(ok, err:match("attempt to concatenate a nil value"))
	`, `1
"v" "0"
"v" "0"
"v" nil
4
false "attempt to concatenate a nil value"
`, false},
	{"reentrant key_transform", rmcConnect + `
		local seen = {}
		local weird = memcached:new{key_transform = {
			function(k) assert(memc:set("side:" .. k, "x")) return k end,
			function(k) seen[#seen + 1] = (memc:get("side:" .. k)) return k .. "!" end,
		}}
		weird:set_timeout(2000)
		assert(weird:connect(HOST, PORT))
		show(weird:set("k1", string.rep("v", 100)))
		show(weird:set("k2", {"a", "b"}))
		show(#weird:get("k1"))
		local res = assert(weird:get({"k1", "k2"}))
		show(#res["k1!"][1], res["k2!"][1], #seen, seen[1], seen[2])
		show(memc:get("side:k2"))
	`, `1
1
100
100 "ab" 2 "x" "x"
"x" "0"
`, false},
	{"pipeline", rmcConnect + `
		show(memc:init_pipeline())
		show(memc:init_pipeline())
		show(memc:set("dog", 32))
		show(memc:add("dog", 1))
		show(memc:get("dog"))
		show(memc:get("cat"))
		show(memc:incr("dog", 2))
		show(memc:gets({"dog", "cat"}))
		show(memc:delete("cat"))
		local results, err = memc:commit_pipeline()
		show(#results, err)
		show(unpack(results[1]))
		show(unpack(results[2]))
		show(unpack(results[3]))
		show(select('#', unpack(results[4])), results[4][3])
		show(unpack(results[5]))
		show(results[6][1].dog[1], results[6][1].cat)
		show(unpack(results[7]))
		show(memc:commit_pipeline())
		show(memc:init_pipeline(10))
		memc:set("x", 1)
		memc:cancel_pipeline()
		show(memc:commit_pipeline())
		show(memc:get("x"))
		show(memc:init_pipeline("x"))
		show(memc:init_pipeline())
		show(#assert(memc:commit_pipeline()))
		memc:init_pipeline()
		memc:quit()
		show(unpack(assert(memc:commit_pipeline())[1]))
	`, `
"already init pipeline"
1
1
1
1
1
1
1
7 nil
1
nil "NOT_STORED"
"32" "0"
0 nil
"34"
"34" nil
nil "NOT_FOUND"
nil "no pipeline"

nil "no pipeline"
nil nil nil
"bad n arg: number expected, but got string"

0
1
`, true},
}

func TestRestyMemcachedBehaviour(t *testing.T) {
	for _, b := range rmcBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range rmcCases {
				t.Run(tc.name, func(t *testing.T) {
					e := newRmcEnv(t, nil)
					got := e.run(t, b.port, tc.code)
					assert.Equal(t, tc.want, got)
					if tc.name != "quit" {
						// Only the line OpenResty writes for a command on a
						// closed socket.
						for _, l := range e.log.lines {
							assert.Equal(t, rmcClosedSend, l)
						}
					}
				})
			}
		})
	}
}

func TestRestyMemcachedPoolReuse(t *testing.T) {
	for _, b := range rmcBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			pools := &memcached.Pools{}
			t.Cleanup(func() { pools.Close() })
			e1, e2 := newRmcEnv(t, pools), newRmcEnv(t, pools)
			code := `
				local memc = memcached:new()
				assert(memc:connect(HOST, PORT))
				ngx.say(memc:get_reused_times())
				assert(memc:set("k", "v"))
				ngx.say(memc:set_keepalive(0, 10))
				ngx.say(memc:get_reused_times())
			`
			assert.Equal(t, "0\n1\nnilclosed\n", e1.run(t, b.port, code))
			assert.Equal(t, "1\n1\nnilclosed\n", e1.run(t, b.port, code))
			// Another VM of the process draws from the same pool.
			assert.Equal(t, "2\n1\nnilclosed\n", e2.run(t, b.port, code))
			// A connection the handler forgot is pooled when the request ends.
			assert.Equal(t, "3\n", e1.run(t, b.port, `
				local memc = memcached:new()
				assert(memc:connect(HOST, PORT))
				ngx.say(memc:get_reused_times())
			`))
			assert.Equal(t, "4\n", e1.run(t, b.port, `
				local memc = memcached:new()
				assert(memc:connect(HOST, PORT))
				ngx.say(memc:get_reused_times())
				memc:close()
			`))
			// Closed rather than pooled: the next one is fresh.
			assert.Equal(t, "0\n", e1.run(t, b.port, `
				local memc = memcached:new()
				assert(memc:connect(HOST, PORT, {pool = "other"}))
				ngx.say(memc:get_reused_times())
				memc:set_keepalive()
			`))
			assert.Equal(t, "1\n0\n", e1.run(t, b.port, `
				local memc = memcached:new()
				assert(memc:connect(HOST, PORT, {pool = "other"}))
				ngx.say(memc:get_reused_times())
				-- connecting again drops the current connection
				assert(memc:connect(HOST, PORT, {pool = "other"}))
				ngx.say(memc:get_reused_times())
			`))
			// A pipeline left uncommitted does not poison the pooled connection.
			assert.Equal(t, "1 nilnilnil\n", e1.run(t, b.port, `
				local memc = memcached:new()
				assert(memc:connect(HOST, PORT))
				memc:init_pipeline()
				memc:set("k", "pending")
				assert(memc:set_keepalive())
				assert(memc:connect(HOST, PORT))
				local n = memc:get_reused_times()
				ngx.say(n, " ", memc:get("zz"))
			`))
			assert.Empty(t, e1.logged())
			assert.Empty(t, e2.logged())
		})
	}
}

func TestRestyMemcachedSetKeepaliveArguments(t *testing.T) {
	port := rmcBackends(t)[0].port
	e := newRmcEnv(t, nil)
	body, err := e.runErr(t, port, `
		local memc = memcached:new()
		assert(memc:connect(HOST, PORT))
		memc:set_keepalive(1000, 0)
	`, 5*time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `bad "pool_size" option value: 0`)
	assert.Empty(t, body)
	body = e.run(t, port, `
		local memc = memcached:new()
		assert(memc:connect(HOST, PORT))
		ngx.say(memc:set_keepalive(1))
		ngx.sleep(0.01)
		assert(memc:connect(HOST, PORT))
		ngx.say(memc:get_reused_times())
	`)
	assert.Equal(t, "1\n0\n", body, "a connection idle past max_idle_timeout is not reused")
}

// rmcSilentListener accepts connections and reads them without ever
// answering; serve(conn) can replace that.
func rmcListener(t *testing.T, serve func(net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			if serve != nil {
				go serve(c)
			}
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func TestRestyMemcachedSocketErrors(t *testing.T) {
	silent := rmcListener(t, nil)
	// A peer that answers the first command with half a value, then hangs up.
	cut := rmcListener(t, func(c net.Conn) {
		buf := make([]byte, 512)
		if _, err := c.Read(buf); err == nil {
			c.Write([]byte("VALUE k 0 10\r\nabc")) //nolint:errcheck
		}
		c.Close()
	})
	// A peer that hangs up at once.
	hangup := rmcListener(t, func(c net.Conn) { c.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := l.Addr().(*net.TCPAddr).Port
	l.Close()
	missing := filepath.Join(t.TempDir(), "none.sock")

	cases := []struct {
		name      string
		port      int
		logErrors bool
		code      string
		want      string
		log       string
		level     int
		native    bool
	}{
		{"refused", refused, true, `
			local memc = memcached:new()
			ngx.say(memc:connect(HOST, PORT))
			ngx.say(memc:get("k"))
		`, "nilconnection refused\nnilnilclosed\n", "connect() failed (111: Connection refused)", 0, false},
		{"refused silent", refused, false, `
			local memc = memcached:new()
			ngx.say(memc:connect(HOST, PORT))
		`, "nilconnection refused\n", "", 0, false},
		{"missing unix socket", 0, true, `
			local memc = memcached:new()
			ngx.say(memc:connect("unix:` + missing + `"))
		`, "nilno such file or directory\n", "connect() to unix:" + missing + " failed (2: No such file or directory)", LogCrit, false},
		{"read timeout", silent, true, `
			local memc = memcached:new()
			memc:set_timeout(50)
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:get("k"))
			ngx.say(memc:set("k", 1))
			ngx.say(memc:set_keepalive())
		`, "nilniltimeout\nnilclosed\nnilclosed\n", "lua tcp socket read timed out", 0, false},
		{"read timeout set_timeouts", silent, true, `
			local memc = memcached:new()
			assert(memc:set_timeouts(1000, 1000, 30))
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:stats())
		`, "niltimeout\n", "lua tcp socket read timed out", 0, true},
		{"read timeout silent", silent, false, `
			local memc = memcached:new()
			memc:set_timeout(30)
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:incr("k", 1))
		`, "niltimeout\n", "", 0, false},
		{"read timeout pipeline", silent, true, `
			local memc = memcached:new()
			memc:set_timeout(30)
			assert(memc:connect(HOST, PORT))
			memc:init_pipeline()
			memc:set("a", 1)
			memc:get("a")
			ngx.say(memc:commit_pipeline())
			ngx.say(memc:get_reused_times())
		`, "niltimeout\nnilclosed\n", "lua tcp socket read timed out", 0, true},
		{"closed mid value", cut, true, `
			local memc = memcached:new()
			memc:set_timeout(1000)
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:get("k"))
		`, "nilnilclosed\n", "", 0, false},
		{"closed before reply", hangup, true, `
			local memc = memcached:new()
			memc:set_timeout(1000)
			assert(memc:connect(HOST, PORT))
			ngx.sleep(0.05)
			ngx.say(memc:gets({"k"}))
		`, "nilclosed\n", "", 0, false},
		{"bad port", 0, true, `
			local memc = memcached:new()
			ngx.say(memc:connect("127.0.0.1", 70000))
			ngx.say(memc:connect("127.0.0.1"))
		`, "nilbad port number: 70000\nnilmissing the port number\n", "", 0, false},
		{"non-numeric port", 0, true, `
			local memc = memcached:new()
			ngx.say(memc:connect("127.0.0.1", "11211x") == nil)
		`, "", "", 0, true},
	}
	for _, impl := range []string{"native", "pure-Lua"} {
		for _, tc := range cases {
			t.Run(impl+"/"+tc.name, func(t *testing.T) {
				var e *rmcEnv
				if impl == "native" {
					e = newRmcEnv(t, nil)
				} else {
					if tc.native {
						t.Skip("uses what lua-resty-memcached 0.13 lacks")
					}
					e = newPureLuaEnv(t)
				}
				e.socket.LogErrors = tc.logErrors
				body, err := e.runErr(t, tc.port, tc.code, 10*time.Second)
				if tc.name == "non-numeric port" {
					require.Error(t, err, "a non-numeric port raises")
					assert.Contains(t, err.Error(), "number expected, got string")
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tc.want, body)
				if tc.log == "" {
					assert.Empty(t, e.logged())
				} else {
					level := LogErr
					if tc.level != 0 {
						level = tc.level
					}
					assert.Equal(t, logLine{level, tc.log}, e.firstLog(t))
				}
			})
		}
	}
}

func TestRestyMemcachedRequestTimeoutStopsAHungRead(t *testing.T) {
	silent := rmcListener(t, nil)
	e := newRmcEnv(t, nil)
	start := time.Now()
	_, err := e.runErr(t, silent, `
		local memc = memcached:new()
		memc:set_timeout(30000)
		assert(memc:connect(HOST, PORT))
		local v, f, err = memc:get("k")
		ngx.say("not reached ", err)
	`, 200*time.Millisecond)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// rmcSharedDir is a temporary directory memcached can use when it runs as
// nobody (t.TempDir's parent is private to root).
func rmcSharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rmc")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	return dir
}

func TestRestyMemcachedUnixSocket(t *testing.T) {
	dir := rmcSharedDir(t)
	sock := filepath.Join(dir, "memc.sock")
	rmcStartMemcached(t, "unix", sock, "-s", sock, "-a", "0777", "-U", "0")
	pools := &memcached.Pools{}
	t.Cleanup(func() { pools.Close() })
	e := newRmcEnv(t, pools)
	code := `
		local memc = memcached:new()
		memc:set_timeout(1000)
		local ok, err = memc:connect("unix:` + sock + `")
		if not ok then ngx.say("failed to connect: ", err) return end
		ngx.say(memc:get_reused_times())
		ngx.say(memc:set("dog", 32))
		ngx.say(memc:get("dog"))
		ngx.say(memc:set_keepalive(10000, 100))
	`
	assert.Equal(t, "0\n1\n320\n1\n", e.run(t, 0, code))
	assert.Equal(t, "1\n1\n320\n1\n", e.run(t, 0, code))
	assert.Empty(t, e.logged())
}

func TestRestyMemcachedConnectTimeout(t *testing.T) {
	port := mctest.FullBacklog(t).Port
	e := newRmcEnv(t, nil)
	start := time.Now()
	body := e.run(t, port, `
		local memc = memcached:new()
		memc:set_timeouts(100, 1000, 1000)
		ngx.say(memc:connect(HOST, PORT))
		ngx.say(memc:get("k"))
	`)
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Equal(t, "niltimeout\nnilnilclosed\n", body)
	assert.Equal(t, logLine{LogErr, "lua tcp socket connect timed out, when connecting to 127.0.0.1:" + strconv.Itoa(port)}, e.firstLog(t))
}

// TestRestyMemcachedAgreesWithThePureLuaLibrary runs the behaviour cases on
// the original library too: the Go-native module must answer line for line
// what lua-resty-memcached's own code answers.
func TestRestyMemcachedAgreesWithThePureLuaLibrary(t *testing.T) {
	newPureLuaEnv(t) // skips early when the library cannot run
	for _, b := range rmcBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range rmcCases {
				if tc.native {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					e := newPureLuaEnv(t)
					assert.Equal(t, tc.want, e.run(t, b.port, tc.code))
				})
			}
		})
	}
}
