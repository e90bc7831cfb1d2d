package luabind

import (
	"os"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// installSearcher replaces gopher-lua's Lua-file searcher (package.loaders[2])
// with one that compiles through Options.Compile, or CompileChunk without
// it. The engine caches the protos per config generation, so a module is
// compiled once for all VMs rather than once per VM, and it records the
// files to watch for hot reload.
func (vm *VM) installSearcher() {
	L := vm.L
	loaders, ok := L.GetField(L.Get(lua.RegistryIndex), "_LOADERS").(*lua.LTable)
	if !ok {
		return
	}
	loaders.RawSetInt(2, L.NewFunction(vm.searchLuaFile))
}

// searchLuaFile is Lua 5.1's package.loaders[2]: it looks for the module on
// package.path and returns its chunk, or the "no file" lines for require's
// error message.
func (vm *VM) searchLuaFile(L *lua.LState) int {
	name := L.CheckString(1)
	path, ok := L.GetField(L.GetGlobal("package"), "path").(lua.LString)
	if !ok {
		L.RaiseError("package.path must be a string")
	}
	modpath := strings.ReplaceAll(name, ".", "/")
	var tried strings.Builder
	for _, tmpl := range strings.Split(string(path), ";") {
		if tmpl == "" {
			continue
		}
		file := strings.ReplaceAll(tmpl, "?", modpath)
		if fi, err := os.Stat(file); err != nil || fi.IsDir() {
			if tried.Len() > 0 {
				tried.WriteString("\n\t")
			}
			tried.WriteString("no file '" + file + "'")
			continue
		}
		compile := vm.opts.Compile
		if compile == nil {
			// Uncached (lua_code_cache off, tests): compiled per
			// require, but still by CompileChunk, as every chunk is.
			compile = compileModuleFile
		}
		proto, err := compile(file)
		if err != nil {
			L.RaiseError("error loading module '%s' from file '%s':\n\t%v", name, file, err)
		}
		L.Push(L.NewFunctionFromProto(proto))
		return 1
	}
	L.Push(lua.LString(tried.String()))
	return 1
}
