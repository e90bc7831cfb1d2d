package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"

	"luaserve/luabind"
)

// syncBuffer is an error log the test can read while the engine writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address whose port was free a moment ago
// (nginx, like our parser, rejects port 0 in listen).
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

type testServer struct {
	e      *Engine
	prefix string
	addr   string
	log    *syncBuffer
	client *fasthttp.Client
}

// startEngine writes files (path → content) under a fresh prefix, with the
// http block body as conf/nginx.conf, and starts an engine on it.
func startEngine(t *testing.T, httpBody string, files map[string]string) *testServer {
	t.Helper()
	prefix := t.TempDir()
	conf := "error_log logs/error.log info;\npid logs/nginx.pid;\nhttp {\n" + httpBody + "\n}\n"
	files["conf/nginx.conf"] = strings.ReplaceAll(conf, "127.0.0.1:0", freeAddr(t))
	for name, content := range files {
		p := filepath.Join(prefix, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	log := &syncBuffer{}
	e, err := New(Options{Prefix: prefix, ErrorLog: log})
	require.NoError(t, err)
	require.NoError(t, e.Start())
	t.Cleanup(func() { e.Shutdown(context.Background(), false) })
	addrs := e.Addrs()
	require.NotEmpty(t, addrs)
	return &testServer{e: e, prefix: prefix, addr: addrs[0], log: log,
		client: &fasthttp.Client{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}}
}

// do sends method uri (with an optional body) and returns status and body.
func (s *testServer) do(t *testing.T, method, uri string, body string, headers ...string) (int, string, *fasthttp.Response) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + s.addr + uri)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
		if strings.EqualFold(headers[i], "Host") {
			req.UseHostHeader = true // else fasthttp sends the URI's host
		}
	}
	if body != "" {
		req.SetBodyString(body)
	}
	resp := &fasthttp.Response{}
	require.NoError(t, s.client.DoTimeout(req, resp, 10*time.Second))
	return resp.StatusCode(), string(resp.Body()), resp
}

func (s *testServer) get(t *testing.T, uri string) (int, string) {
	code, body, _ := s.do(t, "GET", uri, "")
	return code, body
}

const basicServer = `
server {
	listen 127.0.0.1:0;
	server_name localhost;
	lua_request_timeout 200ms;
	client_max_body_size 16;
	location = /hello { content_by_lua_block { ngx.say("hello") } }
	location /err { content_by_lua_block { local t = nil; return t.x } }
	location /loop { content_by_lua_block { while true do end } }
	location /exit404 { content_by_lua_block { ngx.exit(404) } }
	location /exit-after-say { content_by_lua_block { ngx.say("partial") ngx.exit(500) } }
	location /ret { return 201 "created $arg_x"; }
	location /redir { return 302 /hello; }
	location ~ ^/files/(\w+)$ { content_by_lua_file scripts/$1.lua; }
	location /set {
		set $greeting "hi $arg_name";
		content_by_lua_block { ngx.say(ngx.var.greeting) }
	}
	location /phases {
		rewrite_by_lua_block { ngx.ctx.trace = "rewrite" }
		access_by_lua_block {
			ngx.ctx.trace = ngx.ctx.trace .. ",access"
			if ngx.var.arg_deny then ngx.exit(403) end
		}
		content_by_lua_block { ngx.say(ngx.ctx.trace, ",content") }
		log_by_lua_block { ngx.log(ngx.NOTICE, "logged ", ngx.status) }
	}
	location /exec { content_by_lua_block { ngx.exec("/hello") } }
	location /body { content_by_lua_block { ngx.req.read_body() ngx.say(ngx.req.get_body_data()) } }
	location /static/ { root html; }
}
`

func basicFiles() map[string]string {
	return map[string]string{
		"scripts/alpha.lua":      `ngx.say("alpha ", ngx.var[1])`,
		"html/static/a.txt":      "static file\n",
		"html/static/dir/x.html": "<p>x</p>",
		"html/static/index.html": "index\n",
		"secret.txt":             "do not serve",
	}
}

func TestEngineServesLuaAndNginxDirectives(t *testing.T) {
	s := startEngine(t, basicServer, basicFiles())
	cases := []struct {
		uri    string
		status int
		body   string
	}{
		{"/hello", 200, "hello\n"},
		{"/ret?x=1", 201, "created 1"},
		{"/set?name=bob", 200, "hi bob\n"},
		{"/files/alpha", 200, "alpha alpha\n"},
		{"/phases", 200, "rewrite,access,content\n"},
		{"/exec", 200, "hello\n"},
		{"/static/a.txt", 200, "static file\n"},
		{"/static/", 200, "index\n"},
	}
	for _, c := range cases {
		t.Run(c.uri, func(t *testing.T) {
			code, body := s.get(t, c.uri)
			assert.Equal(t, c.status, code)
			assert.Equal(t, c.body, body)
		})
	}
	assert.NotContains(t, s.log.String(), "[error]", "healthy requests write no [error]")
}

func TestEngineErrorPaths(t *testing.T) {
	s := startEngine(t, basicServer, basicFiles())

	code, body := s.get(t, "/nowhere")
	assert.Equal(t, 404, code)
	assert.Contains(t, body, "<title>404 Not Found</title>")

	code, body = s.get(t, "/exit404")
	assert.Equal(t, 404, code)
	assert.Equal(t, "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>luaserve</center>\r\n</body>\r\n</html>\r\n", body)

	code, body = s.get(t, "/exit-after-say")
	assert.Equal(t, 200, code, "the status was sent with the first output")
	assert.Equal(t, "partial\n", body)
	assert.Contains(t, s.log.String(), "attempt to set status 500 via ngx.exit after sending out the response status 200")

	code, _ = s.get(t, "/phases?deny=1")
	assert.Equal(t, 403, code)

	code, _, resp := s.do(t, "GET", "/redir", "")
	assert.Equal(t, 302, code)
	assert.Equal(t, "http://"+s.addr+"/hello", string(resp.Header.Peek("Location")), "relative redirects become absolute, as nginx's absolute_redirect")

	code, _ = s.get(t, "/files/missing")
	assert.Equal(t, 404, code, "a missing content_by_lua_file answers 404, as lua-nginx-module does")
	assert.Contains(t, s.log.String(), `failed to load external Lua file "`+s.prefix+`/scripts/missing.lua": cannot open`)

	code, _ = s.get(t, "/files/..%2f..%2fsecret")
	assert.NotEqual(t, 200, code)
	code, body = s.get(t, "/static/../secret.txt")
	assert.NotEqual(t, "do not serve", body)
	_ = code

	code, _, _ = s.do(t, "POST", "/body", strings.Repeat("x", 17))
	assert.Equal(t, 413, code)
	code, body, _ = s.do(t, "POST", "/body", "small")
	assert.Equal(t, 200, code)
	assert.Equal(t, "small\n", body)

	code, body = s.get(t, "/err")
	assert.Equal(t, 500, code)
	assert.Contains(t, body, "500 Internal Server Error")
	log := s.log.String()
	assert.Regexp(t, `\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#0: \*\d+ lua entry thread aborted: runtime error: content_by_lua\(nginx\.conf:\d+\):1: attempt to index local 't' \(a nil value\)`, log)
	assert.Contains(t, log, "stack traceback:")
	assert.Regexp(t, `, client: 127\.0\.0\.1, server: localhost, request: "GET /err HTTP/1\.1", host: "127\.0\.0\.1:\d+"`, log)
}

func TestEngineStopsRunawayScriptAndKeepsServing(t *testing.T) {
	s := startEngine(t, basicServer, basicFiles())
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := s.get(t, "/loop")
			assert.Equal(t, 500, code)
		}()
	}
	for i := 0; i < 20; i++ {
		code, body := s.get(t, "/hello")
		require.Equal(t, 200, code)
		require.Equal(t, "hello\n", body)
	}
	wg.Wait()
	assert.Contains(t, s.log.String(), "lua_request_timeout (200ms) exceeded")
}

func TestEngineReloadKeepsOldGenerationOnError(t *testing.T) {
	s := startEngine(t, basicServer, basicFiles())
	conf := filepath.Join(s.prefix, "conf/nginx.conf")
	good, err := os.ReadFile(conf)
	require.NoError(t, err)

	bad := strings.Replace(string(good), `ngx.say("hello")`, `ngx.say("hello"`, 1)
	require.NoError(t, os.WriteFile(conf, []byte(bad), 0o644))
	require.Error(t, s.e.Reload())
	assert.Equal(t, int64(1), s.e.Generation())
	code, body := s.get(t, "/hello")
	assert.Equal(t, 200, code)
	assert.Equal(t, "hello\n", body)
	assert.Contains(t, s.log.String(), "reload failed, still serving generation 1")

	next := strings.Replace(string(good), `ngx.say("hello")`, `ngx.say("hello again")`, 1)
	require.NoError(t, os.WriteFile(conf, []byte(next), 0o644))
	require.NoError(t, s.e.Reload())
	assert.Equal(t, int64(2), s.e.Generation())
	_, body = s.get(t, "/hello")
	assert.Equal(t, "hello again\n", body)
}

func TestEngineInitByLuaErrorFailsLoad(t *testing.T) {
	prefix := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(prefix, "conf"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(prefix, "conf/nginx.conf"), []byte(`
http {
	init_by_lua_block { error("init failed") }
	server { listen `+freeAddr(t)+`; location / { content_by_lua_block { ngx.say(1) } } }
}`), 0o644))
	_, err := New(Options{Prefix: prefix, ErrorLog: &syncBuffer{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "init failed")
	assert.Contains(t, err.Error(), "nginx.conf:3")
}

func TestEngineInitByLuaGlobalsVisibleToHandlers(t *testing.T) {
	s := startEngine(t, `
	init_by_lua_block { greeting = "from init" }
	server { listen 127.0.0.1:0; location / { content_by_lua_block { ngx.say(greeting) } } }`, map[string]string{})
	_, body := s.get(t, "/")
	assert.Equal(t, "from init\n", body)
}

func BenchmarkEngineHello(b *testing.B) {
	prefix := b.TempDir()
	require.NoError(b, os.MkdirAll(filepath.Join(prefix, "conf"), 0o755))
	addr := freeAddr(b)
	require.NoError(b, os.WriteFile(filepath.Join(prefix, "conf/nginx.conf"), []byte(`
http { server { listen `+addr+`; location /hello { access_log off; content_by_lua_block { ngx.say("hello") } } } }`), 0o644))
	e, err := New(Options{Prefix: prefix, ErrorLog: &syncBuffer{}})
	require.NoError(b, err)
	defer e.Shutdown(context.Background(), false)
	h := e.Handler(addr)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.SetRequestURI("/hello")
		for pb.Next() {
			ctx.Response.Reset()
			h(ctx)
			if ctx.Response.StatusCode() != 200 {
				panic(fmt.Sprint("status ", ctx.Response.StatusCode()))
			}
		}
	})
}

func TestEngineServerLevelSetAndReturnRunBeforeLocations(t *testing.T) {
	s := startEngine(t, `
	server {
		listen 127.0.0.1:0;
		set $tier "gold";
		location / { content_by_lua_block { ngx.say(ngx.var.tier) } }
	}
	server {
		listen 127.0.0.1:0;
		server_name old.example;
		return 301 http://new.example$request_uri;
		location / { content_by_lua_block { ngx.say("never") } }
	}`, map[string]string{})
	_, body := s.get(t, "/x")
	assert.Equal(t, "gold\n", body)
	code, _, resp := s.do(t, "GET", "/a?b=1", "", "Host", "old.example")
	assert.Equal(t, 301, code)
	assert.Equal(t, "http://new.example/a?b=1", string(resp.Header.Peek("Location")))
}

// A Go function reached from Lua that panics: the request answers 500 with
// an [error] line, the VM is discarded, and the server keeps serving.
func TestEngineSurvivesGoPanicFromLua(t *testing.T) {
	prefix := t.TempDir()
	addr := freeAddr(t)
	require.NoError(t, os.MkdirAll(filepath.Join(prefix, "conf"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(prefix, "conf/nginx.conf"), []byte(`
http {
	lua_vm_pool_size 1;
	server {
		listen `+addr+`;
		location /panic { content_by_lua_block { require("gopanic").boom() } }
		location /state { content_by_lua_block { counter = (counter or 0) + 1 ngx.say(package.loaded.gopanic and "loaded" or "fresh") } }
	}
}`), 0o644))
	log := &syncBuffer{}
	e, err := New(Options{Prefix: prefix, ErrorLog: log, Preload: map[string]lua.LGFunction{
		"gopanic": func(L *lua.LState) int {
			L.Push(L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
				"boom": func(L *lua.LState) int {
					var m map[string]int
					m["x"] = 1 // a Go bug: assignment to a nil map
					return 0
				},
			}))
			return 1
		},
	}})
	require.NoError(t, err)
	require.NoError(t, e.Start())
	defer e.Shutdown(context.Background(), false)
	s := &testServer{e: e, prefix: prefix, addr: addr, log: log, client: &fasthttp.Client{}}

	code, _ := s.get(t, "/panic")
	assert.Equal(t, 500, code)
	assert.Contains(t, log.String(), "assignment to entry in nil map")
	// With a pool of one VM, the next request gets a new VM: the broken one
	// (which had loaded the module) was discarded.
	code, body := s.get(t, "/state")
	assert.Equal(t, 200, code)
	assert.Equal(t, "fresh\n", body)
}

func BenchmarkVMPoolGetPut(b *testing.B) {
	p := newVMPool(&luabind.Options{}, 64, time.Second)
	defer p.close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			vm, err := p.get()
			if err != nil {
				panic(err)
			}
			p.put(vm)
		}
	})
}

func TestTimersRunInTheirVMAndFirePrematurelyOnReload(t *testing.T) {
	s := startEngine(t, `
	lua_shared_dict state 1m;
	lua_hot_reload off;
	init_worker_by_lua_block {
		local state = ngx.shared.state
		local ok, err = ngx.timer.every(0.02, function(premature)
			if premature then
				state:set("premature", (state:get("premature") or 0) + 1)
				return
			end
			state:incr("ticks", 1, 0)
		end)
		assert(ok, err)
		assert(ngx.timer.at(0, function(premature, a, b) state:set("args", a .. b) end, "x", "y"))
	}
	server {
		listen 127.0.0.1:0;
		location /state {
			content_by_lua_block {
				local s = ngx.shared.state
				ngx.say(s:get("args"), " ", (s:get("ticks") or 0) > 0, " ", s:get("premature"), " ", ngx.timer.pending_count())
			}
		}
		location /at {
			content_by_lua_block {
				ngx.say(pcall(ngx.timer.at, -1, function() end))
			}
		}
	}`, map[string]string{})
	deadline := time.Now().Add(3 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		_, body = s.get(t, "/state")
		if body == "xy true nil 1\n" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, "xy true nil 1\n", body, s.log.String())
	_, body = s.get(t, "/at")
	assert.Contains(t, body, "false")
	assert.Contains(t, body, "bad argument #1 to 'at' (invalid delay)")

	// A reload retires the generation: its every-timer fires prematurely
	// once, and the new generation starts its own.
	require.NoError(t, s.e.Reload())
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		_, body = s.get(t, "/state")
		if strings.Contains(body, " 1 1\n") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.Equal(t, "xy true 1 1\n", body, s.log.String())
	assert.NotContains(t, s.log.String(), "[error]")
}

func TestSubrequestsAndLightThreads(t *testing.T) {
	s := startEngine(t, `
	server {
		listen 127.0.0.1:0;
		location /echo {
			content_by_lua_block {
				ngx.req.read_body()
				ngx.header["X-Echo"] = "1"
				ngx.print(ngx.req.get_method(), " ", ngx.var.uri, " ", ngx.var.args or "", " ", ngx.req.get_body_data() or "", " ", ngx.var.who, " ", tostring(ngx.req.is_internal()))
			}
		}
		location /missing_inner { return 404; }
		location /cap {
			set $who "parent";
			content_by_lua_block {
				local res = ngx.location.capture("/echo?a=1", { method = ngx.HTTP_POST, body = "b", vars = { who = "sub" } })
				ngx.say(res.status, "|", res.body, "|", res.header["X-Echo"])
				local r1, r2 = ngx.location.capture_multi({ { "/echo", { args = { x = 2 }, copy_all_vars = true } }, { "/missing_inner" } })
				ngx.say(r1.status, "|", r1.body, "|", r2.status)
				ngx.say(pcall(ngx.location.capture, "/echo", { ctx = {} }))
			}
		}
		location /threads {
			content_by_lua_block {
				local t1 = ngx.thread.spawn(function(a) return a * 2 end, 21)
				local t2 = ngx.thread.spawn(function() coroutine.yield() return "late" end)
				local t3 = ngx.thread.spawn(function() error("boom", 0) end)
				ngx.say(ngx.thread.wait(t1))
				ngx.say(ngx.thread.wait(t2))
				ngx.say(ngx.thread.wait(t3))
				ngx.say(ngx.thread.kill(t1))
				local t4 = ngx.thread.spawn(function() coroutine.yield() end)
				ngx.say(ngx.thread.kill(t4))
			}
		}
	}`, map[string]string{})
	_, body := s.get(t, "/cap")
	lines := strings.Split(body, "\n")
	require.Len(t, lines, 4, body)
	assert.Equal(t, "200|POST /echo a=1 b sub true|1", lines[0])
	assert.Equal(t, "200|GET /echo x=2  parent true|404", lines[1])
	assert.Contains(t, lines[2], "false")
	assert.Contains(t, lines[2], "the ctx option is not supported")

	_, body = s.get(t, "/threads")
	assert.Equal(t, "true42\ntruelate\nfalseboom\nnilalready terminated\n1\n", body)
	assert.Contains(t, s.log.String(), "lua user thread aborted: runtime error: boom")
}

func TestEnvDirectiveAndConnectionClose(t *testing.T) {
	t.Setenv("LUASERVE_TEST_INHERITED", "inherited")
	t.Setenv("LUASERVE_TEST_HIDDEN", "hidden")
	s := startEngine(t, `
	server {
		listen 127.0.0.1:0;
		location /env { content_by_lua_block { ngx.say(os.getenv("LUASERVE_TEST_INHERITED"), " ", os.getenv("LUASERVE_TEST_SET"), " ", os.getenv("LUASERVE_TEST_HIDDEN")) } }
	}`, map[string]string{})
	conf := filepath.Join(s.prefix, "conf/nginx.conf")
	raw, err := os.ReadFile(conf)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(conf, []byte("env LUASERVE_TEST_INHERITED;\nenv LUASERVE_TEST_SET=set;\n"+string(raw)), 0o644))
	require.NoError(t, s.e.Reload())
	_, body := s.get(t, "/env")
	assert.Equal(t, "inherited set nil\n", body, "only variables named by env are visible, as in nginx")

	c, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("GET /env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, err := io.ReadAll(c) // returns only when the server closes
	require.NoError(t, err)
	assert.Contains(t, string(all), "Connection: close")
	assert.True(t, strings.HasSuffix(string(all), "inherited set nil\n"))
}

// A handler failing after output gets what nginx gives: the connection cut,
// with nothing sent (output is buffered until the handler ends, nginx's is
// until a flush) or, after ngx.flush, the response up to that flush with no
// final chunk. The server goes on serving, the error is logged.
func TestEngineFailureAfterOutputCutsTheConnection(t *testing.T) {
	s := startEngine(t, `
	server {
		listen 127.0.0.1:0;
		location /say { content_by_lua_block { ngx.say("partial") error("late") } }
		location /flush {
			content_by_lua_block {
				ngx.status = 201
				ngx.say("sent")
				ngx.flush(true)
				ngx.say("buffered")
				error("late")
			}
		}
		location /ok { content_by_lua_block { ngx.say("ok") } }
	}`, map[string]string{})
	raw := func(uri string, method ...string) string {
		m := "GET"
		if len(method) > 0 {
			m = method[0]
		}
		c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = c.Write([]byte(m + " " + uri + " HTTP/1.1\r\nHost: localhost\r\n\r\n"))
		require.NoError(t, err)
		got, err := io.ReadAll(c) // until the server closes
		require.NoError(t, err)
		return string(got)
	}
	assert.Empty(t, raw("/say"))
	got := raw("/flush")
	assert.True(t, strings.HasPrefix(got, "HTTP/1.1 201 Created\r\n"), got)
	assert.Contains(t, got, "\r\nTransfer-Encoding: chunked\r\n")
	assert.True(t, strings.HasSuffix(got, "\r\n\r\n5\r\nsent\n\r\n"), "the flushed chunk, no final one: %q", got)
	got = raw("/flush", "HEAD")
	assert.True(t, strings.HasPrefix(got, "HTTP/1.1 201 Created\r\n") && strings.HasSuffix(got, "\r\n\r\n"), "a HEAD gets the head only: %q", got)
	code, body := s.get(t, "/ok")
	assert.Equal(t, 200, code)
	assert.Equal(t, "ok\n", body)
	assert.Contains(t, s.log.String(), "late")
}
