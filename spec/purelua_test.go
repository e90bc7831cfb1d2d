package spec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"luaserve/engine"
)

// redisBinary is Debian's redis-server, which .ci/run installs.
const redisBinary = "/usr/bin/redis-server"

// pureLuaSpecs are the acceptance specs of ngx.socket.tcp: Debian's copies
// of the original pure-Lua lua-resty-memcached and lua-resty-redis running
// unchanged.
var pureLuaSpecs = []string{"purelua_memcached_spec.lua", "purelua_redis_spec.lua"}

// TestPureLuaLibraries runs the pure-Lua library specs against a real
// memcached and a real redis-server started on free loopback ports. The
// specs are copied next to a generated purelua_redis_spec.conf that hands
// them redis's address through server-level variables (nginx workers do
// not see the environment, and neither do luaserve's VMs). TestLuaSpecs
// runs the memcached one against the embedded server too; without redis
// the redis spec is pending there.
func TestPureLuaLibraries(t *testing.T) {
	mc := startMemcached(t)
	redis := startRedis(t)
	host, port, err := net.SplitHostPort(redis)
	require.NoError(t, err)

	dir := t.TempDir()
	var paths []string
	for _, name := range pureLuaSpecs {
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		dst := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(dst, src, 0o644))
		paths = append(paths, dst)
	}
	conf := fmt.Sprintf("set $purelua_redis_host %q;\nset $purelua_redis_port %q;\n", host, port)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "purelua_redis_spec.conf"), []byte(conf), 0o644))

	var out bytes.Buffer
	sum, err := engine.RunSpecsSummary(engine.SpecOptions{
		Prefix:    "..",
		Paths:     paths,
		Memcached: mc,
		Out:       &out,
		Verbose:   testing.Verbose(),
	})
	require.NoError(t, err, out.String())
	t.Logf("pure-Lua library specs:\n%s", out.String())
	require.NotZero(t, sum.Passed, "no spec passed: the runner ran nothing")
	if sum.Pending > 0 {
		// Here both libraries and both servers are present: nothing may be
		// skipped.
		t.Errorf("%d spec(s) pending although memcached, redis and the libraries are installed:\n%s", sum.Pending, out.String())
	}
	if sum.Failed > 0 {
		t.Errorf("%d pure-Lua library spec(s) failed:\n%s", sum.Failed, failures(out.String()))
	}
}

// startRedis starts Debian's redis-server on a free loopback port, without
// persistence, or skips when it is not installed.
func startRedis(t *testing.T) string {
	if _, err := os.Stat(redisBinary); err != nil {
		t.Skipf("%s not installed (apt-get install redis-server): %v", redisBinary, err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := exec.Command(redisBinary, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir())
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Kill() //nolint:errcheck // it may have exited already
			<-exited
		})
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitListening(addr, exited); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return ""
}

// synopsisLua is lua-resty-memcached's synopsis; %s is the module to
// require, %s and %d the memcached address.
const synopsisLua = `
	local memcached = require "%s"
	local memc, err = memcached:new()
	if not memc then ngx.say("failed to instantiate memc: ", err) return end
	memc:set_timeout(1000)
	local ok, err = memc:connect("%s", %d)
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
`

// startSynopsis starts an engine serving the synopsis at /native (the
// Go-native resty.memcached) and at /purelua (Debian's lua-resty-memcached
// over ngx.socket.tcp, found through lua_package_path), against the
// memcached at mc, or the embedded one when mc is "".
func startSynopsis(tb testing.TB, mc string) string {
	tb.Helper()
	if _, err := os.Stat("/usr/share/lua/5.1/nginx/memcached.lua"); err != nil {
		tb.Skipf("lua-nginx-memcached is not installed (apt-get install lua-nginx-memcached): %v", err)
	}
	freeAddr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		defer l.Close()
		return l.Addr().String()
	}
	embedded := ""
	if mc == "" {
		mc = freeAddr()
		embedded = "memcached_embedded " + mc + ";\n"
	}
	host, portText, err := net.SplitHostPort(mc)
	require.NoError(tb, err)
	port, err := strconv.Atoi(portText)
	require.NoError(tb, err)
	conf := "error_log logs/error.log error;\npid logs/luaserve.pid;\n" + embedded +
		"http {\n\taccess_log off;\n\tlua_package_path \"/usr/share/lua/5.1/?.lua\";\n\tserver {\n\t\tlisten {{LISTEN}};\n" +
		"\t\tlocation = /native { content_by_lua_block {" + fmt.Sprintf(synopsisLua, "resty.memcached", host, port) + "} }\n" +
		"\t\tlocation = /purelua { content_by_lua_block {" + fmt.Sprintf(synopsisLua, "nginx.memcached", host, port) + "} }\n" +
		"\t}\n}\n"
	return startEngineConf(tb, conf)
}

// lockedWriter serialises the engine's log writes into a buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func getBody(tb testing.TB, c *fasthttp.Client, url string) string {
	status, body, err := c.GetTimeout(nil, url, 5*time.Second)
	require.NoError(tb, err)
	require.Equal(tb, 200, status, string(body))
	return string(body)
}

// TestSynopsisThroughPackagePath serves the document's synopsis with both
// modules through a real config: the pure-Lua library is loaded by
// lua_package_path, and both answer the same, against a real memcached.
func TestSynopsisThroughPackagePath(t *testing.T) {
	addr := startSynopsis(t, startMemcached(t))
	c := &fasthttp.Client{}
	for i := 0; i < 3; i++ {
		assert.Equal(t, "dog: 32\n", getBody(t, c, "http://"+addr+"/native"))
		assert.Equal(t, "dog: 32\n", getBody(t, c, "http://"+addr+"/purelua"))
	}
}

// BenchmarkSynopsisHTTP is the synopsis route through HTTP, Go-native and
// pure-Lua over cosockets, in the same run, against the embedded memcached
// (LUASERVE_BENCH_MEMCACHED=host:port names another one).
func BenchmarkSynopsisHTTP(b *testing.B) {
	addr := startSynopsis(b, os.Getenv("LUASERVE_BENCH_MEMCACHED"))
	for _, route := range []string{"native", "purelua"} {
		b.Run(route, func(b *testing.B) {
			c := &fasthttp.Client{}
			url := "http://" + addr + "/" + route
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if string(resp.Body()) != "dog: 32\n" {
					b.Fatalf("%s: %q", route, resp.Body())
				}
			}
		})
	}
}

// openrestyHarness runs purelua_memcached_spec.lua's operations with
// nginx.memcached in both roles and prints each operation's line, under
// real nginx and under luaserve alike. {{SPEC}} and {{PORT}} are filled in.
const openrestyHarness = `
local out, names = {}, {}
assert = setmetatable({ are = { equal = function(a, b, msg) if msg then out[#out + 1] = b end end } },
  { __call = function(_, v, ...) if not v then error((...) or "assertion failed", 2) end return v, ... end })
describe = function(_, fn) fn() end
it = function(name, fn) names[#names + 1] = name; fn() end
pending = function(m) ngx.say("PENDING ", m) end
package.preload["resty.memcached"] = function() return require "nginx.memcached" end
SPEC_MEMCACHED_HOST = "127.0.0.1"
SPEC_MEMCACHED_PORT = {{PORT}}
local chunk = assert(loadfile("{{SPEC}}"))
setfenv(chunk, getfenv(1))
chunk()
for i, l in ipairs(out) do ngx.say(names[i], ": ", l) end
`

const (
	nginxBinary    = "/usr/sbin/nginx"
	nginxLuaModule = "/usr/share/nginx/modules/ngx_http_lua_module.so"
	nginxNDKModule = "/usr/share/nginx/modules/ndk_http_module.so"
)

// TestPureLuaMemcachedMatchesOpenResty runs the pure-Lua library through
// every operation of purelua_memcached_spec.lua under Debian's nginx-extras
// (lua-nginx-module) and under luaserve, against one real memcached: the
// outputs must be identical. With the spec's own comparison this closes
// the loop: resty.memcached = nginx.memcached on luaserve = nginx.memcached
// on OpenResty.
func TestPureLuaMemcachedMatchesOpenResty(t *testing.T) {
	for _, f := range []string{nginxBinary, nginxLuaModule, nginxNDKModule, "/usr/share/lua/5.1/nginx/memcached.lua"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (apt-get install nginx-extras lua-nginx-memcached): %v", f, err)
		}
	}
	mc := startMemcached(t)
	_, mcPort, err := net.SplitHostPort(mc)
	require.NoError(t, err)
	spec, err := filepath.Abs("purelua_memcached_spec.lua")
	require.NoError(t, err)
	harness := strings.NewReplacer("{{SPEC}}", spec, "{{PORT}}", mcPort).Replace(openrestyHarness)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "harness.lua"), []byte(harness), 0o644))
	for _, d := range []string{"conf", "logs", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	want := runNginx(t, dir, "")
	require.NotEmpty(t, want)

	addr := startEngineConf(t, "error_log logs/error.log error;\npid logs/luaserve.pid;\n"+
		"http {\n\taccess_log off;\n\tlua_package_path \"/usr/share/lua/5.1/?.lua\";\n\tserver {\n\t\tlisten {{LISTEN}};\n"+
		"\t\tlocation = /t { content_by_lua_file "+filepath.Join(dir, "harness.lua")+"; }\n\t}\n}\n")
	got := getBody(t, &fasthttp.Client{}, "http://"+addr+"/t")
	assert.Equal(t, want, got)
	assert.Equal(t, strings.Count(want, "\n"), 53, "every operation ran")
}

// runNginx serves dir/harness.lua with nginx on a free port (extra goes
// into its location), fetches its output once and stops nginx.
func runNginx(t *testing.T, dir, extra string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := l.Addr().String()
	l.Close()
	tmp := filepath.Join(dir, "tmp")
	conf := fmt.Sprintf(`load_module %s;
load_module %s;
daemon off;
master_process off;
error_log %s error;
pid %s;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %s/body;
	proxy_temp_path %s/proxy;
	fastcgi_temp_path %s/fastcgi;
	uwsgi_temp_path %s/uwsgi;
	scgi_temp_path %s/scgi;
	lua_package_path "/usr/share/lua/5.1/?.lua;;";
	server {
		listen %s;
		location = /t { %s content_by_lua_file %s; }
	}
}
`, nginxNDKModule, nginxLuaModule, filepath.Join(dir, "logs", "error.log"), filepath.Join(dir, "logs", "nginx.pid"),
		tmp, tmp, tmp, tmp, tmp, listen, extra, filepath.Join(dir, "harness.lua"))
	confFile := filepath.Join(dir, "conf", "nginx.conf")
	require.NoError(t, os.WriteFile(confFile, []byte(conf), 0o644))
	cmd := exec.Command(nginxBinary, "-p", dir, "-c", confFile, "-e", filepath.Join(dir, "logs", "error.log"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill() //nolint:errcheck // it may have exited already
		<-exited
	}()
	if err := waitListening(listen, exited); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
		t.Fatalf("nginx did not start: %v\n%s\n%s", err, stderr.String(), log)
	}
	body := getBody(t, &fasthttp.Client{}, "http://"+listen+"/t")
	return body
}

// startEngineConf starts luaserve on conf ({{LISTEN}} becomes a free
// address) in a temporary prefix.
func startEngineConf(tb testing.TB, conf string) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	listen := l.Addr().String()
	l.Close()
	prefix := tb.TempDir()
	require.NoError(tb, os.MkdirAll(filepath.Join(prefix, "conf"), 0o755))
	require.NoError(tb, os.MkdirAll(filepath.Join(prefix, "logs"), 0o755))
	conf = strings.ReplaceAll(conf, "{{LISTEN}}", listen)
	require.NoError(tb, os.WriteFile(filepath.Join(prefix, "conf", "nginx.conf"), []byte(conf), 0o644))
	var errlog bytes.Buffer
	e, err := engine.New(engine.Options{Prefix: prefix, ErrorLog: &lockedWriter{w: &errlog}, NoHotReload: true})
	require.NoError(tb, err)
	require.NoError(tb, e.Start())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Shutdown(ctx, false) //nolint:errcheck // the test is over
	})
	return e.Addrs()[0]
}

// bustedStub is just enough of busted for purelua_redis_spec.lua to run
// under nginx: it prints "ok NAME" or "FAIL NAME: message" per test.
const bustedStub = `
local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
local function check(ok, msg) if not ok then error(msg, 3) end end
local function show(v) return type(v) == "string" and string.format("%q", v) or tostring(v) end
assert = setmetatable({
  are = {
    equal = function(a, b) check(a == b, "expected " .. show(a) .. ", got " .. show(b)) end,
    same = function(a, b) check(same(a, b), "tables differ") end,
  },
  matches = function(p, s) check(type(s) == "string" and s:match(p), "no match for " .. p .. ": " .. show(s)) end,
  is_nil = function(v) check(v == nil, "expected nil, got " .. show(v)) end,
  is_true = function(v, m) check(v == true, m or "expected true") end,
}, { __call = function(_, v, ...) if not v then error((...) or "assertion failed", 2) end return v, ... end })
describe = function(_, fn) fn() end
pending = function(m) ngx.say("PENDING ", m) end
it = function(name, fn)
  local ok, err = pcall(fn)
  if ok then ngx.say("ok ", name) else ngx.say("FAIL ", name, ": ", err) end
end
local chunk = assert(loadfile("{{SPEC}}"))
setfenv(chunk, getfenv(1))
chunk()
`

// TestPureLuaRedisSpecUnderOpenResty runs purelua_redis_spec.lua under
// Debian's nginx-extras with a minimal busted, against a real redis: the
// results the spec expects are OpenResty's own.
func TestPureLuaRedisSpecUnderOpenResty(t *testing.T) {
	for _, f := range []string{nginxBinary, nginxLuaModule, nginxNDKModule, "/usr/share/lua/5.1/nginx/redis.lua"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (apt-get install nginx-extras lua-nginx-redis): %v", f, err)
		}
	}
	redis := startRedis(t)
	host, port, err := net.SplitHostPort(redis)
	require.NoError(t, err)
	spec, err := filepath.Abs("purelua_redis_spec.lua")
	require.NoError(t, err)
	dir := t.TempDir()
	harness := strings.ReplaceAll(bustedStub, "{{SPEC}}", spec)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "harness.lua"), []byte(harness), 0o644))
	for _, d := range []string{"conf", "logs", "tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	out := runNginx(t, dir, fmt.Sprintf("set $purelua_redis_host %s; set $purelua_redis_port %s;", host, port))
	assert.NotContains(t, out, "FAIL")
	assert.NotContains(t, out, "PENDING")
	assert.Equal(t, 10, strings.Count(out, "ok "), out)
}
