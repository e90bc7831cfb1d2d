package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

func init() {
	// gopher-lua puts every integer key up to MaxArrayIndex in a table's
	// array part, so t[1e7] = 1 from request data would allocate ~160 MB.
	// Larger keys simply live in the hash part, invisible to Lua code.
	lua.MaxArrayIndex = 1 << 20
	// Lua 5.0's implicit `arg` table in vararg functions: LuaJIT (and so
	// OpenResty) has none, and building it cost every chunk run (main
	// chunks are vararg) a table. Must be set before anything compiles.
	lua.CompatVarArg = false
}

// unavailable are modules OpenResty code requires that cannot exist on
// gopher-lua; requiring one fails with a message that says why.
var unavailable = map[string]string{
	"ffi":            "LuaJIT's FFI is not available in luaserve (gopher-lua is a pure-Go Lua 5.1)",
	"jit":            "LuaJIT's jit module is not available in luaserve (gopher-lua is a pure-Go Lua 5.1)",
	"resty.core":     "resty.core is built on LuaJIT's FFI, which luaserve does not have; its APIs are provided natively by the ngx table",
	"resty.lrucache": "resty.lrucache is built on LuaJIT's FFI, which luaserve does not have; use ngx.shared.DICT",
}

// vmOpeners are registered by the files that define Go-native modules
// (resty.bmemcached, resty.memcached, ngx.socket …) from their init
// functions; every new VM runs each once.
var vmOpeners []func(vm *VM)

// openModules registers the modules every VM can require.
func (vm *VM) openModules() {
	L := vm.L
	OpenTableExt(L)
	L.PreloadModule("cjson", CjsonLoader)
	L.PreloadModule("cjson.safe", CjsonSafeLoader)
	L.PreloadModule("bit", BitLoader)
	// LuaJIT has bit as a global too, and OpenResty code calls bit.band
	// without requiring it.
	L.Push(L.NewFunction(BitLoader))
	L.Call(0, 1)
	L.SetGlobal("bit", L.Get(-1))
	L.Pop(1)
	for _, open := range vmOpeners {
		open(vm)
	}
	for name, why := range unavailable {
		msg := "module '" + name + "' is not available: " + why
		L.PreloadModule(name, func(L *lua.LState) int {
			L.RaiseError("%s", msg)
			return 0
		})
	}
}
