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
