package luabind

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// After pcall or xpcall caught an error, closures still share the locals of
// the functions that are running (gopher-lua alone closed them all), while
// those of the frames the error unwound are closed with their last values.
func TestPcallKeepsOuterUpvaluesOpen(t *testing.T) {
	require.True(t, upvalueFields.ok, "gopher-lua's LState/Upvalue layout changed: update luajit_upvalues.go")
	runCompiled(t, "=upvalues", `
		local count = 0
		local function inc() count = count + 1 end
		inc()
		pcall(error, "x")
		inc()
		assert(count == 2, "after pcall(error): " .. count)

		pcall(function() local t; return t.x end)
		inc()
		assert(count == 3, "after a runtime error: " .. count)

		xpcall(function() error("y") end, function(e) return e end)
		inc()
		assert(count == 4, "after xpcall: " .. count)

		-- nested: the inner pcall returning must not expose the outer one
		pcall(function()
			pcall(error, "inner")
			error("outer")
		end)
		inc()
		assert(count == 5, "after nested pcalls: " .. count)

		-- a closure made inside the failed call keeps its local's last value
		local getter
		pcall(function()
			local v = "last"
			getter = function() return v end
			error("z")
		end)
		local a, b, c = 1, 2, 3 -- reuse the registry slots the call had
		assert(getter() == "last", "closed upvalue: " .. tostring(getter()))

		-- inside a coroutine
		local co = coroutine.wrap(function()
			local n = 0
			local function bump() n = n + 1 end
			pcall(error, "c")
			bump()
			coroutine.yield(n)
		end)
		assert(co() == 1, "in a coroutine")
	`)
}

// runCompiled runs code, compiled as every chunk is, in a new VM.
func runCompiled(t *testing.T, name, code string) {
	t.Helper()
	vm, err := NewVM(&Options{Logger: &testLogger{}})
	require.NoError(t, err)
	defer vm.Close()
	proto, err := CompileChunk(strings.NewReader(code), name)
	require.NoError(t, err)
	vm.L.Push(vm.L.NewFunctionFromProto(proto))
	require.NoError(t, vm.L.PCall(0, 0, nil))
}

// xpcall of a value that cannot be called runs the handler protected too.
func TestXpcallNotCallableHandler(t *testing.T) {
	runCompiled(t, "=xpcall", `
		local count = 0
		local function inc() count = count + 1 end
		local ok, msg = xpcall(42, function(e) return "handled: " .. e end)
		assert(ok == false and msg == "handled: attempt to call a number value", tostring(msg))
		ok, msg = xpcall(42, function() end)
		assert(ok == false and msg == nil, tostring(msg))
		ok, msg = xpcall(42, function() error("again") end)
		assert(ok == false and msg == "error in error handling", tostring(msg))
		inc()
		assert(count == 1)
	`)
}
