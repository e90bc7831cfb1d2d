package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

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
