package luabind

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"

	"luaserve/memcached/server"
)

// bustedShim is the part of busted/luassert that spec/bmemcached_spec.lua
// uses, so the spec runs here before the project's spec runner exists. It
// prints one line per spec: "ok name", "FAIL name: message" or
// "PENDING name".
const bustedShim = `
local names = {}
local function full(name)
  local t = {}
  for _, n in ipairs(names) do t[#t + 1] = n end
  t[#t + 1] = name
  return table.concat(t, " ")
end
function describe(name, fn)
  names[#names + 1] = name
  fn()
  names[#names] = nil
end
function it(name, fn)
  local ok, err = pcall(fn)
  if ok then ngx.say("ok ", full(name)) else ngx.say("FAIL ", full(name), ": ", tostring(err)) end
end
function pending(name) ngx.say("PENDING ", full(name)) end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then
    local ok, s = pcall(require("cjson").encode, v)
    if ok then return s end
  end
  return tostring(v)
end
local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
local function fail(msg) error(msg, 3) end
local function strip(err)
  if type(err) == "string" then return (err:gsub("^.-:%d+: ", "", 1)) end
  return err
end
assert = {
  are = {
    equal = function(e, a) if e ~= a then fail("expected " .. show(e) .. ", got " .. show(a)) end end,
    same = function(e, a) if not same(e, a) then fail("expected " .. show(e) .. ", got " .. show(a)) end end,
  },
  are_not = {
    equal = function(e, a) if e == a then fail("expected not " .. show(e)) end end,
  },
  is_true = function(v) if v ~= true then fail("expected true, got " .. show(v)) end end,
  is_nil = function(v) if v ~= nil then fail("expected nil, got " .. show(v)) end end,
  truthy = function(v) if not v then fail("expected a truthy value, got " .. show(v)) end end,
  has_error = function(fn, want)
    local ok, err = pcall(fn)
    if ok then fail("expected an error") end
    if want ~= nil and strip(err) ~= want then fail("expected error " .. show(want) .. ", got " .. show(err)) end
  end,
  error_matches = function(fn, pat)
    local ok, err = pcall(fn)
    if ok then fail("expected an error") end
    if not tostring(strip(err)):match(pat) then fail("error " .. show(err) .. " does not match " .. show(pat)) end
  end,
}
`

// TestBmemSpec runs spec/bmemcached_spec.lua against the embedded server
// (with a SASL server for the SASL specs) and against a real memcached.
func TestBmemSpec(t *testing.T) {
	spec, err := os.ReadFile("../spec/bmemcached_spec.lua")
	require.NoError(t, err)
	forEachBackend(t, func(t *testing.T, b bmemBackend) {
		v := newBmemVM(t, nil)
		// The spec reads its settings from _G (or the environment).
		L := v.vm.L
		L.SetGlobal("BMEMCACHED_HOST", lua.LString(b.host))
		L.SetGlobal("BMEMCACHED_PORT", lua.LString(strconv.Itoa(b.port)))
		if b.name == "embedded" {
			sasl := embeddedMemcached(t, server.Config{SASLUser: "user", SASLPassword: "secret"})
			L.SetGlobal("BMEMCACHED_SASL_PORT", lua.LString(strconv.Itoa(sasl.port)))
		}
		out, err := v.run(t, b, bustedShim+"\n"+
			"local spec, err = loadstring("+luaQuote(string(spec))+", '@spec/bmemcached_spec.lua')\n"+
			"if not spec then error(err) end setfenv(spec, getfenv(1)) spec()")
		require.NoError(t, err)
		var oks int
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			switch {
			case strings.HasPrefix(line, "ok "):
				oks++
			case strings.HasPrefix(line, "FAIL "):
				t.Error(line)
			case strings.HasPrefix(line, "PENDING "):
				if b.name == "embedded" {
					t.Error("embedded run must not leave specs pending: " + line)
				}
				t.Log(line)
			default:
				t.Errorf("unexpected spec output %q", line)
			}
		}
		assert.Greater(t, oks, 30, "specs that passed")
		t.Logf("%s: %d specs passed", b.name, oks)
	})
}

// luaQuote writes s as a Lua long string literal.
func luaQuote(s string) string {
	eq := ""
	for strings.Contains(s, "]"+eq+"]") {
		eq += "="
	}
	return "[" + eq + "[\n" + s + "]" + eq + "]"
}
