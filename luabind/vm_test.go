package luabind

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

type logLine struct {
	level int
	msg   string
}

type testLogger struct{ lines []logLine }

func (l *testLogger) Log(level int, _ *Request, msg string) {
	l.lines = append(l.lines, logLine{level, msg})
}

func compile(t testing.TB, name, code string) *lua.FunctionProto {
	t.Helper()
	chunk, err := parse.Parse(strings.NewReader(code), name)
	require.NoError(t, err)
	proto, err := lua.Compile(chunk, name)
	require.NoError(t, err)
	return proto
}

// runChunk serves one request through code in a fresh VM and returns the
// request, the error of the run and the logger.
func runChunk(t *testing.T, uri, code string, timeout time.Duration) (*fasthttp.RequestCtx, *Request, error, *testLogger) {
	t.Helper()
	log := &testLogger{}
	vm, err := NewVM(&Options{Logger: log})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.Set("User-Agent", "test/1")
	r := &Request{Ctx: ctx, Phase: PhaseContent, Path: ctx.Path(), Start: time.Now()}
	vm.Bind(r)
	err = vm.Run(compile(t, "content_by_lua(nginx.conf:1)", code), timeout)
	vm.End()
	return ctx, r, err, log
}

func TestNgxSayFormatting(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/", `
		ngx.say("a", 1, 2.5, 1/3, true, false, nil, ngx.null, {"x", {"y", 3}})
		ngx.print(1e15, " ", -0.0, " ", 100, " ", 1e100, " ", 2^53)
		ngx.say()
		ngx.say(1/0, " ", -1/0, " ", 0.1)
	`, 0)
	require.NoError(t, err)
	assert.Equal(t, "a12.50.33333333333333truefalsenilnullxy3\n1e+15 -0 100 1e+100 9.007199254741e+15\ninf -inf 0.1\n", string(ctx.Response.Body()))
}

func TestNgxSayRejectsHashTables(t *testing.T) {
	_, _, err, _ := runChunk(t, "/", `ngx.say({a = 1})`, 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad argument #1 to 'say' (non-array table found)")
	_, _, err, _ = runChunk(t, "/", `ngx.say(print)`, 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "string, number, boolean, nil, ngx.null, or array table expected, but got function")
}

func TestNgxExitStopsTheChunkEvenInsidePcall(t *testing.T) {
	ctx, r, err, _ := runChunk(t, "/", `
		ngx.say("before")
		pcall(ngx.exit, 201)
		ngx.say("after")
	`, 0)
	require.NoError(t, err)
	assert.True(t, r.Exited)
	assert.Equal(t, 201, r.ExitCode)
	assert.Equal(t, "before\n", string(ctx.Response.Body()))
}

func TestRunawayChunkTimesOut(t *testing.T) {
	start := time.Now()
	_, _, err, _ := runChunk(t, "/", `while true do end`, 50*time.Millisecond)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestRuntimeErrorCarriesTraceback(t *testing.T) {
	_, _, err, _ := runChunk(t, "/", "local x = nil\nerror('boom')", 0)
	var lerr *LuaError
	require.ErrorAs(t, err, &lerr)
	assert.Equal(t, "content_by_lua(nginx.conf:1):2: boom", lerr.Msg)
	assert.Contains(t, lerr.Traceback, "stack traceback:")
	assert.Contains(t, lerr.Traceback, "content_by_lua(nginx.conf:1):2: in main chunk")
}

func TestNgxVar(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/p/a?Key=v%20x&b&key=second", `
		ngx.say(ngx.var.arg_key, "|", ngx.var.arg_b, "|", ngx.var.arg_missing, "|", ngx.var.uri, "|", ngx.var.args)
		ngx.say(ngx.var.http_user_agent, "|", ngx.var.request_method, "|", ngx.var.request_uri)
	`, 0)
	require.NoError(t, err)
	assert.Equal(t, "v%20x|nil|nil|/p/a|Key=v%20x&b&key=second\ntest/1|GET|/p/a?Key=v%20x&b&key=second\n", string(ctx.Response.Body()), "a key without = is nil, as in OpenResty")
}

func TestNgxHeaderAndStatus(t *testing.T) {
	ctx, _, err, log := runChunk(t, "/", `
		ngx.status = 201
		ngx.header.content_type = "text/x-test"
		ngx.header["X-Multi"] = {"a", "b"}
		ngx.header.x_single = 5
		local m = ngx.header.x_multi
		ngx.say(ngx.status, " ", ngx.header["Content-Type"], " ", m[1], m[2], " ", ngx.header.X_Single)
		ngx.status = 500
		ngx.header.x_late = "no"
	`, 0)
	require.NoError(t, err)
	assert.Equal(t, "201 text/x-test ab 5\n", string(ctx.Response.Body()))
	assert.Equal(t, 201, ctx.Response.StatusCode())
	assert.Empty(t, ctx.Response.Header.Peek("X-Late"))
	require.Len(t, log.lines, 2)
	assert.Equal(t, "attempt to set ngx.status after sending out response headers", log.lines[0].msg)
}

func TestNgxLogAndPrint(t *testing.T) {
	_, _, err, log := runChunk(t, "/", "ngx.log(ngx.ERR, 'x=', 1, ' ', nil, true)\nprint('hi')", 0)
	require.NoError(t, err)
	require.Len(t, log.lines, 2)
	assert.Equal(t, logLine{LogErr, "[lua] content_by_lua(nginx.conf:1):1: x=1 niltrue"}, log.lines[0])
	assert.Equal(t, logLine{LogNotice, "[lua] content_by_lua(nginx.conf:1):2: hi"}, log.lines[1])
}

func TestGlobalsArePerRequest(t *testing.T) {
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	proto := compile(t, "x", `counter = (counter or 0) + 1 ngx.say(counter)`)
	for i := 0; i < 2; i++ {
		ctx := &fasthttp.RequestCtx{}
		vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent})
		require.NoError(t, vm.Run(proto, 0))
		vm.End()
		assert.Equal(t, "1\n", string(ctx.Response.Body()))
	}
}

func TestUnavailableModules(t *testing.T) {
	_, _, err, _ := runChunk(t, "/", `require "ffi"`, 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "module 'ffi' is not available")
}

func BenchmarkNgxSayHello(b *testing.B) {
	vm, err := NewVM(&Options{})
	require.NoError(b, err)
	defer vm.Close()
	proto := compile(b, "x", `ngx.say("hello")`)
	ctx := &fasthttp.RequestCtx{}
	r := &Request{Ctx: ctx, Phase: PhaseContent}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.ResetBody()
		vm.Bind(r)
		if err := vm.Run(proto, time.Second); err != nil {
			b.Fatal(err)
		}
		vm.End()
	}
}

func TestHugeIntegerKeyStaysCheap(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, _, err, _ := runChunk(t, "/", `local t = {} t[1e7] = 1 t[2^40] = 2 ngx.say(t[1e7], t[2^40], #t)`, 0)
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	assert.Equal(t, "120\n", string(ctx.Response.Body()))
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "t[1e7] must not grow the array part to 10M slots")
}

func TestOnlyGoPanicsBreakTheVM(t *testing.T) {
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	vm.L.SetGlobal("gobug", vm.L.NewFunction(func(L *lua.LState) int {
		var p *Request
		return p.NCap // nil pointer dereference
	}))
	run := func(code string) error {
		vm.Bind(&Request{Ctx: &fasthttp.RequestCtx{}, Phase: PhaseContent})
		defer vm.End()
		return vm.Run(compile(t, "x", code), time.Second)
	}
	for _, code := range []string{`error("lua error")`, `local t = nil; return t.x`, `ngx.say(print)`, `error({})`, `ngx.exit(500)`} {
		run(code)
		require.False(t, vm.Broken(), "%s must not break the VM", code)
	}
	err = run(`gobug()`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nil pointer dereference")
	assert.True(t, vm.Broken())
}

func TestNoImplicitArgTable(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/", `local function f(...) return arg end ngx.say(type(f(1, 2)), select("#", ...))`, 0)
	require.NoError(t, err)
	assert.Equal(t, "nil0\n", string(ctx.Response.Body()), "LuaJIT has no Lua 5.0 arg table")
}

func TestNgxReIsRegistered(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/", `local m = ngx.re.match("hello 42", [[(\d+)]], "jo") ngx.say(m[0], " ", m[1])`, 0)
	require.NoError(t, err)
	assert.Equal(t, "42 42\n", string(ctx.Response.Body()))
}

func TestAPIDisabledInPhases(t *testing.T) {
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	cases := []struct {
		phase Phase
		code  string
		want  string
	}{
		{PhaseLog, `ngx.say("x")`, "API disabled in the context of log_by_lua*"},
		{PhaseLog, `ngx.exit(200)`, "API disabled in the context of log_by_lua*"},
		{PhaseLog, `ngx.redirect("/")`, "API disabled in the context of log_by_lua*"},
		{PhaseLog, `ngx.req.read_body()`, "API disabled in the context of log_by_lua*"},
		{PhaseLog, `ngx.location.capture("/")`, "API disabled in the context of log_by_lua*"},
		{PhaseLog, `ngx.sleep(0)`, "API disabled in the context of log_by_lua*"},
	}
	for _, c := range cases {
		vm.Bind(&Request{Ctx: &fasthttp.RequestCtx{}, Phase: c.phase})
		err := vm.Run(compile(t, "x", c.code), time.Second)
		vm.End()
		require.Error(t, err, c.code)
		assert.Contains(t, err.Error(), c.want, c.code)
	}
	// A timer has no request: request APIs fail as in OpenResty.
	vm.SetPhase(PhaseTimer)
	err = vm.Run(compile(t, "x", `ngx.say("x")`), time.Second)
	vm.SetPhase(PhaseContent)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "API disabled in the context of ngx.timer")
}

// benchChunk runs code as a content handler of a request for uri, b.N times.
func benchChunk(b *testing.B, uri, code string) {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.SetRequestURI(uri)
	benchRequest(b, ctx, code)
}

// benchRequest runs code as a content handler of ctx's request on one VM,
// b.N times.
func benchRequest(b *testing.B, ctx *fasthttp.RequestCtx, code string) {
	vm, err := NewVM(&Options{})
	require.NoError(b, err)
	defer vm.Close()
	proto := compile(b, "x", code)
	r := &Request{Ctx: ctx, Phase: PhaseContent, Path: ctx.Path()}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.ResetBody()
		vm.Bind(r)
		if err := vm.Run(proto, time.Second); err != nil {
			b.Fatal(err)
		}
		vm.End()
	}
}

func BenchmarkNgxVarArg(b *testing.B) {
	benchChunk(b, "/test_b1?key=somekey&value=7", `local k, v = ngx.var.arg_key, ngx.var.arg_value`)
}

func BenchmarkNgxReqGetURIArgs(b *testing.B) {
	benchChunk(b, "/x?a=1&b=two&c=3&a=4&flag", `local args = ngx.req.get_uri_args()`)
}

func TestBigTableConcatAndRegistryLimits(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/", `local t = {} for i = 1, 20000 do t[i] = "x" end ngx.say(#table.concat(t))`, time.Second)
	require.NoError(t, err)
	assert.Equal(t, "20000\n", string(ctx.Response.Body()))
	// Past the registry's limit: an error and a discarded VM, never a crash.
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	vm.Bind(&Request{Ctx: &fasthttp.RequestCtx{}, Phase: PhaseContent})
	err = vm.Run(compile(t, "x", `local t = {} for i = 1, 300000 do t[i] = "x" end return unpack(t)`), 10*time.Second)
	vm.End()
	require.Error(t, err)
	assert.True(t, vm.Broken() || strings.Contains(err.Error(), "overflow"), err.Error())
}

func TestDeadlinesAcrossRunsWithDifferentTimeouts(t *testing.T) {
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	run := func(code string, timeout time.Duration) (error, time.Duration) {
		vm.Bind(&Request{Ctx: &fasthttp.RequestCtx{}, Phase: PhaseContent})
		defer vm.End()
		start := time.Now()
		err := vm.Run(compile(t, "x", code), timeout)
		return err, time.Since(start)
	}
	err, _ = run(`local x = 1`, 10*time.Second) // arms the timer 10 s out
	require.NoError(t, err)
	err, took := run(`while true do end`, 50*time.Millisecond)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.Less(t, took, 2*time.Second, "a shorter deadline re-arms the timer")
	vm.broken = false // the timed-out run broke it; reuse it for the test
	err, took = run(`while true do end`, 80*time.Millisecond)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.Less(t, took, 2*time.Second)
	assert.GreaterOrEqual(t, took, 70*time.Millisecond)
}

func TestStringFormatQuotesAsLuaJIT(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/", `ngx.print(string.format("%q|%5.1f|%%|%s|%q", "a\nb\0c\"\\\0001\127", 3.14159, "x", "\r"))`, 0)
	require.NoError(t, err)
	assert.Equal(t, "\"a\\\nb\\0c\\\"\\\\\\0001\\127\"|  3.1|%|x|\"\\13\"", string(ctx.Response.Body()))
}

func TestStringFormatWithoutQ(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/", `ngx.print(string.format("%d-%s-%5.2f", 7, "x", 1.5), string.format("plain"))`, 0)
	require.NoError(t, err)
	assert.Equal(t, "7-x- 1.50plain", string(ctx.Response.Body()))
}

func TestErrorPositionsAsLua51(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/", `
local function f() error("lvl2", 2) end
ngx.say(select(2, pcall(error, "direct")))
ngx.say(select(2, pcall(function() error("inner") end)))
ngx.say(select(2, pcall(function() error("nopos", 0) end)))
ngx.say(select(2, pcall(function() f() end)))
ngx.say(pcall(error))
ngx.say(type(select(2, pcall(error, {}))))`, 0)
	require.NoError(t, err)
	assert.Equal(t, "direct\ncontent_by_lua(nginx.conf:1):4: inner\nnopos\ncontent_by_lua(nginx.conf:1):6: lvl2\nfalsenil\ntable\n", string(ctx.Response.Body()))
	_, _, err, _ = runChunk(t, "/", "\nerror('boom')", 0)
	require.Error(t, err)
	assert.Equal(t, "content_by_lua(nginx.conf:1):2: boom", err.Error())
}

// Coroutines and light threads share the VM's run context: none costs a
// goroutine (one per coroutine left suspended used to stay until a run was
// cancelled), and each still stops at the deadline of the request running
// it, also when it was created by an earlier request.
func TestThreadsShareTheRunContext(t *testing.T) {
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	run := func(code string, timeout time.Duration) error {
		vm.Bind(&Request{Ctx: &fasthttp.RequestCtx{}, Phase: PhaseContent})
		defer vm.End()
		return vm.Run(compile(t, "x", code), timeout)
	}
	abandon := `
		local co = coroutine.create(function() coroutine.yield() end)
		coroutine.resume(co)
		local w = coroutine.wrap(function() coroutine.yield() end)
		w()
		ngx.thread.spawn(function() coroutine.yield() end)`
	require.NoError(t, run(abandon, time.Second))
	before := runtime.NumGoroutine()
	for range 200 {
		require.NoError(t, run(abandon, time.Second))
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before+5, "goroutines left behind by suspended threads")

	for _, spin := range []string{
		`coroutine.resume(coroutine.create(function() while true do end end))`,
		`coroutine.wrap(function() while true do end end)()`,
		`ngx.thread.wait(ngx.thread.spawn(function() while true do end end))`,
	} {
		start := time.Now()
		assert.ErrorIs(t, run(spin, 100*time.Millisecond), ErrTimeout, spin)
		assert.Less(t, time.Since(start), 2*time.Second, spin)
		vm.broken = false
	}

	// A thread's data stack starts small and grows as the VM's does.
	ctx := &fasthttp.RequestCtx{}
	vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent})
	require.NoError(t, vm.Run(compile(t, "x", `
		local t = {} for i = 1, 20000 do t[i] = "x" end
		local co = coroutine.wrap(function() return #table.concat(t), select("#", unpack(t, 1, 5000)) end)
		local th = ngx.thread.spawn(function() return select("#", unpack(t)) end)
		local a, b = co()
		ngx.say(a, " ", b, " ", select(2, ngx.thread.wait(th)))`), time.Second))
	vm.End()
	assert.Equal(t, "20000 5000 20000\n", string(ctx.Response.Body()))

	// Created by one request, resumed by the next: that request's deadline.
	require.NoError(t, run(`package.loaded.spinner = coroutine.wrap(function() coroutine.yield() while true do end end) package.loaded.spinner()`, time.Second))
	start := time.Now()
	assert.ErrorIs(t, run(`package.loaded.spinner()`, 100*time.Millisecond), ErrTimeout)
	assert.Less(t, time.Since(start), 2*time.Second)
}
