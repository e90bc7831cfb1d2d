package luabind

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// luajitDriver runs each case of a corpus, a Lua snippet, as
// loadstring(code, "=c") under pcall and records what it returned, one line
// per case: the program is run as it is by luajit and by a luabind VM,
// whose answers must be the same. Tables, functions and threads print as
// their type (their addresses differ).
const luajitDriver = `
local out = {}
local function show(v)
	local t = type(v)
	if t == "table" or t == "function" or t == "thread" or t == "userdata" then
		return t
	end
	return tostring(v)
end
local function run(code)
	local f, err = loadstring(code, "=c")
	if not f then
		out[#out + 1] = "load: " .. tostring(err)
		return
	end
	local r = { pcall(f) }
	local parts = {}
	for i = 1, table.maxn(r) do
		parts[#parts + 1] = show(r[i])
	end
	out[#out + 1] = table.concat(parts, " | ")
end
for _, code in ipairs(CASES) do
	run(code)
end
RESULT = table.concat(out, "\n")
`

// luajitCases are the corpus of TestLuaJITCompat. Each runs in a chunk of
// its own (locals are the case's).
var luajitCases = []string{
	// .. coerces numbers as tostring does.
	`return 1 .. "", 1e15 .. "", 2^53 .. "", 1/3 .. "", 10/2 .. "", -0.0 .. ""`,
	`return 0.1 .. "", 1e100 .. "", 2^63 .. "", math.huge .. "", -math.huge .. "", 1e-5 .. ""`,
	`local x, y = 1e15, 0.5 return x .. y, y .. x, x .. "-" .. y .. "-" .. x`,
	`local x = -0 return x .. "", "a" .. 3 .. "b" .. 4.5`,
	`return "a" .. "b" .. "c", ("x"):rep(3) .. 1`,
	`local t = {} t[1 .. ""] = 1 return t["1"]`,
	`local s = "" for i = 1, 5 do s = s .. i .. "," end return s`,
	`local function f(...) return ... .. "!" end return f(1, 2)`,
	`local function f() return 1, 2 end return f() .. "x", "x" .. f()`,
	`local function h(msg) local at = "x" msg = at .. ": " .. msg return msg end return h("m")`,
	`local function h(a, msg) msg, a = "<" .. msg, 1 return msg, a end return h(0, "m")`,
	`local t = {} function t:m(x) x, self = x .. "!", 0 return x end return t:m(1)`,
	// Multiple assignment evaluates every expression first.
	`local a, b = 1, 2 a, b = b, a return a, b`,
	`local a, b, c = 1, 2, 3 a, b, c = c, a, b return a, b, c`,
	`local a, b = 1, 2 a, b = a + b, a - b return a, b`,
	`local a, t = 1, {} a, t[a] = 2, "x" return a, t[1], t[2]`,
	`local function h(self, msg) msg, self = msg .. 1, msg .. 2 return msg, self end return h("s", "m")`,
	`local function h(x, y) x, y = y .. 1, x .. 2 return x, y end return h("x", "y")`,
	`local function h(p) p = (tostring(p)) return p end return h(5)`,
	`local function h(p) p, q = tostring(p), 1 return p, q end return h(5)`,
	`local x, y = 1 x, y = y, x return x, y`,
	`local a, b = 1, 2 a, b = 5 return a, b`,
	`local a = 1 a = 2, a + 1 return a`,
	`local a, b = 1, 2 local function f() return a end a, b = 10, f() return a, b`,
	`local a, b = 1 .. 2 return a, b`,
	`local function f(a) return a .. "!" end return f(1)`,
	`return {1 .. 2, 3 .. 4}`,
	`return select("#", 1 .. 2), #{1 .. 2}`,
	// LuaJIT rounds a tie at the 14th digit away from zero.
	`return 123456789012345 .. "", -123456789012345 .. "", 12345678901234.5 .. "", 1234567890122.25 .. ""`,
	`return tostring(1234567890123.75), tostring(1234567890123450), 2^60 + 2^12 .. "", 1e15 + 5 .. "", 2^70 .. ""`,
	`return table.concat({123456789012345, 0.5, 2.5, 1048576, 1e14 + 0.5}, " ")`,
	`local t = {}
	for i = 1, 400 do
		local k = i * 7919
		t[#t + 1] = 1e14 + k * 10 + 5
		t[#t + 1] = (1e13 + k) / 2 ^ (i % 9)
		t[#t + 1] = -(1e12 + k) / 2 ^ (i % 7) * 10 ^ (i % 30 - 15)
		t[#t + 1] = (k + 0.5) * 2 ^ (i % 70)
		t[#t + 1] = k / 3 ^ (i % 11)
	end
	local s = ""
	for _, v in ipairs(t) do s = s .. v .. " " .. tostring(v) .. ";" end
	return s`,
	// Concatenation errors name the operand as LuaJIT does.
	`local x return "a" .. x`,
	`return "a" .. undefined_global`,
	`local t = {} return "a" .. t.field .. "b"`,
	`local t = {} return "a" .. t["odd key"]`,
	`local t = {} return t[1] .. "x"`,
	`local u return (function() return u .. "x" end)()`,
	`return "x" .. nil`,
	`return nil .. "x"`,
	`return {} .. {}`,
	`local a, b = 1, nil return a .. b .. a`,
	`local a, b = 1, nil return b .. a .. a`,
	`local ok = true return ok .. "x"`,
	`return ("x"):rep(2) .. nil`,
	`local x return "a" ..
		"b" ..
		x`,
	`local x return x
		.. "b"
		.. "c"`,
	`local t = {} return "x" .. t.a.b`,
	`local x = x return "a" .. x`,
	`local function f() local g return g .. "" end return f()`,
	`local t = {} for i = 1, 2 do t[i] = i end local s = "a" .. t return s`,
	// __concat, called right to left with the original operands.
	`local mt = {__concat = function(a, b)
		return "(" .. (type(a) == "table" and "T" or tostring(a)) .. "+" .. (type(b) == "table" and "T" or tostring(b)) .. ")"
	end}
	local t = setmetatable({}, mt)
	return t .. "x", "x" .. t, 1 .. t, t .. 1, "a" .. "b" .. t, t .. "a" .. "b", "a" .. t .. "b" .. t .. "c"`,
	`local t = setmetatable({}, {__concat = function() return nil end})
	local a = "a" return a .. t .. "b"`,
	`local t = setmetatable({}, {__concat = function() return nil end})
	local a = "a" return t .. a .. "b"`,
	`local t = setmetatable({}, {__concat = function() return {} end})
	local a, b = "a", "b" return a .. b .. t`,
	`local t = setmetatable({}, {__concat = function() error("in mm") end}) return "a" .. t`,
	// table.concat
	`return table.concat({1e15, 0.1, -0, 1/0, -1/0, 2^53, 3}, ",")`,
	`return table.concat({1, 2, 3}, ", ", 2), table.concat({1, 2, 3}, "", 1, 2), table.concat({}, "x")`,
	`return table.concat({1, 2, 3}, 5), table.concat({"a", "b"}, nil, 1, 2), table.concat({1, 2, 3}, ",", 3, 1)`,
	`return table.concat({1, 2, 3}, ",", 1.7, 2.9), table.concat({1, 2, 3}, ",", "2")`,
	`local r = table.concat({1, {}, 3}) return r`,
	`local r = table.concat({1, 2, 3}, ",", 1, 5) return r`,
	`local r = table.concat({1, true}) return r`,
	`local r = table.concat({"a", "b"}, ",", 0, 1) return r`,
	`local r = table.concat(nil) return r`,
	`local r = table.concat() return r`,
	`local r = table.concat({}, {}) return r`,
	`local r = table.concat({1, 2}, ",", "x") return r`,
	`local tc = table.concat local r = tc(5) return r`,
	`return pcall(table.concat, {{}})`,
	// Runtime errors: index.
	`local t = {} return t.x.y`,
	`local t = {} t.x.y = 1`,
	`return undefined_global.y`,
	`undefined_global.y = 1`,
	`local u return (function() return u.x end)()`,
	`local a = 5 a.y = 2`,
	`local a = true return a.x`,
	`local t = {} return t[1][2]`,
	`local t, k = {}, "z" return t[k].w`,
	`return ("abc").x.y`,
	`return string.x.y`,
	`local a = {} return a.b.c.d`,
	`local function g() end return g().x`,
	`return setmetatable({}, {__index = 5}).x`,
	`local t = setmetatable({}, {}) getmetatable(t).__index = t return t.x`,
	`local t = setmetatable({}, {}) getmetatable(t).__newindex = t t.x = 1`,
	`local x = nil
	if true then local y = 1 end
	return x.field`,
	`do local a = 1 end
	local b
	return b.x`,
	`for i = 1, 2 do local q = i end
	local t = {}
	return t.a.b`,
	`local a
	if a then local b = 1 else local c = a.x end`,
	`local t = {x = {}} return t.x.y.z`,
	`local t = {}
	return t
		.x
		.y`,
	"local t = {}\nlocal v = t.x\n.y",
	"local t = {}\nt\n.x\n.y = 1",
	"local t = {}\nt.x.y =\n 1",
	"local a\nlocal v = a +\n 1",
	"local a\nlocal v = 1 +\n a",
	"local a\nlocal v = a\n + 1",
	"local a\nlocal v = (a\n + 1)\n * 2",
	"local a\nlocal v = a <\n 1",
	"local a\nlocal v = #\na",
	"local a\nlocal v = -\na",
	"local a\nlocal v = f(\n1,\n2)",
	"local t = {}\nt:m(\n1,\n2)",
	"local t = {}\nlocal v = {\nt.x.y\n}",
	"local t = {}\nngx_say(\n'a',\nt.x.y)",
	"local t = {}\nlocal v = t.x.\ny",
	"local a = nil\nif a.x\n then\nend",
	"local a = nil\nwhile a\n.x do\nend",
	// Calls.
	`undefined_fn()`,
	`local f f()`,
	`local t = {} t.x()`,
	`local t = {} t:m()`,
	`local t = {x = {}} t.x:m()`,
	`local u return (function() u() end)()`,
	`return ("x"):nomethod()`,
	`return math.foo()`,
	`local a = 1 return a()`,
	`local a = 1 a()`,
	`return (1)()`,
	`local f = setmetatable({}, {}) f()`,
	`for k in nil do end`,
	`local f for k in f do end`,
	`for k in 5 do end`,
	`local function f() return undefined_fn() end return f()`,
	// Arithmetic, length, comparison.
	`local a return a + 1`,
	`return undefined_global + 1`,
	`local t = {} return t.x + 1`,
	`local t = {} return 1 - t.x`,
	`return 1 + nil`,
	`local a = "x" return a + 1`,
	`local a = "x" return 1 + a`,
	`local a = "10" return a + {}`,
	`local a, b = 1 return a * b, a`,
	`local a, b = 1 return a % b`,
	`local a, b = 1 return a ^ b`,
	`local a, b = 1 return a / b`,
	`local a, b = 1 return a - b`,
	`local a = {} return -a`,
	`return -undefined_global`,
	`local a = "abc" return -a`,
	`local a = "10" return -a`,
	`local u return (function() return u + 1 end)()`,
	`local a return #a`,
	`return #undefined_global`,
	`local t = {} return #t.x`,
	`return #5`,
	`local a = 1 return a < "x"`,
	`local a = 1 return a > "x"`,
	`local a = 1 return a <= nil`,
	`return {} < {}`,
	`return nil < nil`,
	`local a, b = {}, {} return a >= b`,
	`local a = {} return a < 1`,
	`table.sort({1, "x"})`,
	`table.sort({{}, {}})`,
	// Argument errors of gopher-lua's builtins.
	`local r = string.rep() return r`,
	`local r = ("x"):rep() return r`,
	`local r = ("x"):rep("a") return r`,
	`local s = 5 local r = string.sub(s) return r`,
	`local r = tostring() return r`,
	`local r = ipairs(nil) return r`,
	`local r = math.floor("x") return r`,
	`local r = select(-5) return r`,
	`local r = unpack(nil) return r`,
	`local r = rawget(1) return r`,
	`local r = string.rep(nil, 1) return r`,
	`return string.rep()`,
	`return pcall(string.rep)`,
	`local t = {f = string.rep} local r = t.f() return r`,
	`local r = string.byte({}) return r`,
	`local t = {string.rep} local r = t[1]() return r`,
	`local r = (string.rep)() return r`,
	`local f = function() return string.rep end local r = f()() return r`,
	// Loops and tables.
	`for i = nil, 2 do end`,
	`for i = 1, "x" do end`,
	`for i = 1, 2, {} do end`,
	`local t = {} t[nil] = 1`,
	`local t = {} t[0/0] = 1`,
	`local r = rawset({}, nil, 1) return r`,
	// Stack overflows (at a depth that differs: gopher-lua's call stack
	// is smaller; and an xpcall handler finds no room left, where LuaJIT
	// keeps some for it).
	`return pcall(function() local function f() return 1 + f() end return f() end)`,
	`return pcall(function() local function f() local x = f() return x end return f() end)`,
	`return select(2, pcall(function() local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x end))`,
	// pcall, xpcall, error.
	`local ok, e = pcall() return ok, e`,
	`return pcall(nil)`,
	`return pcall(5, 1)`,
	`return pcall(setmetatable({}, {__call = function(self, a) return a end}), 7)`,
	`return pcall(function(...) return ... end, 1, nil, 3)`,
	`return pcall(error)`,
	`return pcall(function() error("lvl", 2) end)`,
	`local function f() error("lvl", 2) end return pcall(function() f() end)`,
	`return select("#", pcall(unpack, {}, 1, 1e7)), (pcall(unpack, {}, 1, 1e7))`,
	`return pcall(function() error("attempt to compare number with number") end)`,
	`return pcall(function() error("attempt to call a non-function object") end)`,
	`return pcall(error, {})`,
	`return pcall(function() local t = {} return t.x.y end)`,
	`return select("#", pcall(function() end))`,
	`return xpcall(function() local t return t.x end, function(m) return "H:" .. m end)`,
	`return xpcall(nil, function(m) return "H:" .. m end)`,
	`return xpcall(function() error("a") end, function(m) error("b") end)`,
	`return xpcall(function(...) return ... end, print, 1, 2)`,
	`return xpcall(function() error({}) end, function(m) return type(m) end)`,
	`local ok, e = pcall(xpcall, function() end, 5) return ok, e`,
	`local f
	local ok = pcall(function() local x = 1 f = function() return x end error("e") end)
	local a, b, c = 10, 20, 30
	return f(), a, b, c`,
	// Coroutines.
	`local co = coroutine.create(function() local x return x.y end) return coroutine.resume(co)`,
	`local co = coroutine.wrap(function() local x return x.y end) return co()`,
	`local co = coroutine.wrap(function() error("s", 0) end) return co()`,
	`local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b .. "!" end) return co(1), co("x")`,
	`local co = coroutine.create(function(a) coroutine.yield(a) local t return t.z end)
	local r1 = {coroutine.resume(co, 5)} local r2 = {coroutine.resume(co)}
	return r1[1], r1[2], r2[1], r2[2], coroutine.status(co)`,
	`local co = coroutine.create(function() error("lvl", 2) end) return coroutine.resume(co)`,
	`return pcall(coroutine.create, 5)`,
	// load, loadstring.
	`return loadstring("local x return x.y")`,
	`return pcall(loadstring("local x return x.y"))`,
	`return pcall(loadstring("local x return x.y", "name"))`,
	`return pcall(loadstring("local x return x.y", "=name"))`,
	`return pcall(loadstring("local x return x.y", "@file.lua"))`,
	`return pcall(loadstring("local x\n return x.y"))`,
	`return pcall(loadstring(("x"):rep(100) .. " = nil local x return x.y"))`,
	`return pcall(loadstring("local x return x.y", "@" .. ("f"):rep(100)))`,
	`return pcall(loadstring("local x return x.y", "=" .. ("e"):rep(100)))`,
	`return pcall(loadstring("return 1 .. '' .. 2^53"))`,
	`return pcall(load("local x return 'a' .. x"))`,
	`local i = 0 return pcall(load(function() i = i + 1 if i == 1 then return "local x return x.y" end end))`,
	`local parts, i = {"return ", 1, "+", 2}, 0 return pcall(load(function() i = i + 1 return parts[i] end))`,
	`return load(function() return {} end)`,
	`return pcall(loadstring("#!/bin/x\nreturn 1"))`,
	`return pcall(loadstring("return ...", "x"), 1, 2)`,
	`return load("return 1", "c", "b")`,
	`return load("return x", "c", "t", {x = 42})()`,
	`return loadfile("/nonexistent/file.lua")`,
	`return pcall(dofile, "/nonexistent/file.lua")`,
}

func TestLuaJITCompat(t *testing.T) {
	luajit, err := exec.LookPath("luajit")
	if err != nil {
		t.Skip("luajit not installed")
	}
	var cases strings.Builder
	cases.WriteString("CASES = {\n")
	for _, c := range luajitCases {
		cases.WriteString(quoteLuaJIT(c) + ",\n")
	}
	cases.WriteString("}\n")
	program := cases.String() + luajitDriver

	f, err := os.CreateTemp(t.TempDir(), "driver*.lua")
	require.NoError(t, err)
	_, err = f.WriteString(program + "\nio.write(RESULT)\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	out, err := exec.Command(luajit, f.Name()).CombinedOutput()
	require.NoError(t, err, string(out))
	want := strings.Split(string(out), "\n")

	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	proto, err := CompileChunk(strings.NewReader(program), "=driver")
	require.NoError(t, err)
	require.NoError(t, vm.Run(proto, 0))
	got := strings.Split(vm.env.RawGetString("RESULT").String(), "\n")
	require.Len(t, got, len(luajitCases))
	require.Len(t, want, len(luajitCases))
	for i, c := range luajitCases {
		assert.Equal(t, want[i], got[i], "case %d: %s", i, c)
	}
}

// TestCompileChunkScopesLocals compiles the Lua sources of the repository
// (spec files, the spec prelude, examples, the pure-Lua libraries the tests
// run) and checks that the rewriter's idea of every function's locals is
// the compiler's, without which errors could not name them.
func TestCompileChunkScopesLocals(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../spec/*.lua", "../spec/compat/lua/*.lua", "../engine/*.lua",
		"../engine/testdata/*/*.lua", "../examples/*/*.lua", "../examples/*/*/*.lua", "testdata/*/*.lua"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.NotEmpty(t, files)
	for _, path := range files {
		src, err := os.ReadFile(path)
		require.NoError(t, err)
		_, scoped, err := compileChunk(strings.NewReader(string(src)), "@"+path)
		if err != nil {
			continue // the spec runner's tests hold broken files on purpose
		}
		assert.True(t, scoped, path)
	}
	for _, c := range luajitCases {
		_, scoped, err := compileChunk(strings.NewReader(c), "=c")
		require.NoError(t, err, c)
		assert.True(t, scoped, c)
	}
}

// TestRuntimeErrorInFileChunk: a file's chunk is named "@path"; Lua shows
// the path alone in positions, as error() already does.
func TestRuntimeErrorInFileChunk(t *testing.T) {
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	proto, err := CompileChunk(strings.NewReader(`
		local ok, e1 = pcall(function() local t return t.x end)
		local ok2, e2 = pcall(function() return #nil end)
		local ok3, e3 = pcall(string.rep)
		local ok4, e4 = pcall(function() return string.rep() end)
		local ok5, e5 = pcall(error, "@kept:1: as raised", 0)
		RESULT = table.concat({e1, e2, e3, e4, e5}, "\n")
		local t
		return t.y`), "@/srv/lua/handler.lua")
	require.NoError(t, err)
	err = vm.Run(proto, 0)
	require.Error(t, err)
	assert.Equal(t, "/srv/lua/handler.lua:9: attempt to index local 't' (a nil value)", err.Error())
	assert.Equal(t, "/srv/lua/handler.lua:2: attempt to index local 't' (a nil value)\n"+
		"/srv/lua/handler.lua:3: attempt to get length of a nil value\n"+
		"bad argument #1 to '?' (string expected, got no value)\n"+
		"bad argument #1 to '?' (string expected, got no value)\n"+
		"@kept:1: as raised", vm.env.RawGetString("RESULT").String())
}
