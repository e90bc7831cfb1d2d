package luabind

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// luajitLoaders replaces load, loadstring, loadfile and dofile: code loaded
// at run time is compiled by CompileChunk like every other chunk, so its
// `..` and its runtime errors behave the same, and it is named as LuaJIT
// names it ([string "..."], (load), the file name).
func luajitLoaders(L *lua.LState) {
	load := L.NewFunction(luajitLoad)
	// LuaJIT 2.1's loadstring is load.
	L.SetGlobal("load", load)
	L.SetGlobal("loadstring", load)
	L.SetGlobal("loadfile", L.NewFunction(luajitLoadFile))
	L.SetGlobal("dofile", L.NewFunction(luajitDoFile))
}

// luajitLoad is load(chunk [, chunkname [, mode [, env]]]): chunk is a
// string (or number) or a reader function.
func luajitLoad(L *lua.LState) int {
	var src, name string
	switch v := L.Get(1).(type) {
	case lua.LString, lua.LNumber:
		src = checkStr(L, 1)
		name = src
	case *lua.LFunction:
		var b strings.Builder
		for {
			L.Push(v)
			L.Call(0, 1)
			piece := L.Get(-1)
			L.Pop(1)
			if piece == lua.LNil {
				break
			}
			if !concatable(piece) {
				return pushNilErr(L, "reader function must return a string")
			}
			s := lua.LVAsString(piece)
			if s == "" {
				break
			}
			b.WriteString(s)
		}
		src, name = b.String(), "=(load)"
	default:
		apiArgError(L, 1, "function expected, got "+argTypeName(L, 1))
	}
	if L.Get(2) != lua.LNil {
		name = checkStr(L, 2)
	}
	return loadResult(L, src, name, 3)
}

// loadResult compiles src as chunk name and pushes the function (with the
// environment of argument envArg, when given) or nil and the message.
func loadResult(L *lua.LState, src, name string, modeArg int) int {
	if mode := L.Get(modeArg); mode != lua.LNil && !strings.Contains(checkStr(L, modeArg), "t") {
		return pushNilErr(L, "attempt to load chunk with wrong mode")
	}
	fn, err := loadChunk(L, src, name)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	if env, ok := L.Get(modeArg + 1).(*lua.LTable); ok {
		fn.Env = env
	}
	L.Push(fn)
	return 1
}

// loadChunk compiles src under LuaJIT's display form of chunk name name.
func loadChunk(L *lua.LState, src, name string) (*lua.LFunction, error) {
	src = skipShebang(src)
	id := chunkID(name)
	proto, err := CompileChunk(strings.NewReader(src), id)
	if err != nil {
		var perr *parse.Error
		if errors.As(err, &perr) {
			if perr.Pos.Line == parse.EOF {
				return nil, errors.New(id + ":" + strconv.Itoa(strings.Count(src, "\n")+1) + ": " + perr.Message + " near '<eof>'")
			}
			return nil, errors.New(id + ":" + strconv.Itoa(perr.Pos.Line) + ": " + perr.Message + " near '" + perr.Token + "'")
		}
		return nil, errors.New(strings.TrimSpace(err.Error()))
	}
	return L.NewFunctionFromProto(proto), nil
}

// chunkID is how LuaJIT shows chunk name name in messages (lj_debug_shortname,
// LUA_IDSIZE 60): "=name" as name, "@file" as file (its last 56 bytes after
// "..." when long), anything else, the source itself, as [string "first
// line..."].
func chunkID(name string) string {
	const idsize = 60
	switch {
	case strings.HasPrefix(name, "="):
		return cString(name[1:min(len(name), idsize)])
	case strings.HasPrefix(name, "@"):
		s := cString(name[1:])
		if len(s) >= idsize {
			s = "..." + s[len(s)-(idsize-4):]
		}
		return s
	}
	n := 0
	for n < len(name) && n < idsize-12 && name[n] >= ' ' {
		n++
	}
	s := name[:n]
	if n < len(name) && name[n] != 0 {
		s = name[:min(n, idsize-15)] + "..."
	}
	return `[string "` + s + `"]`
}

// luajitLoadFile is loadfile([filename [, mode [, env]]]).
func luajitLoadFile(L *lua.LState) int {
	src, name, err := readChunkFile(L)
	if err != "" {
		return pushNilErr(L, err)
	}
	return loadResult(L, src, name, 2)
}

// luajitDoFile is dofile([filename]): load errors are raised as they are.
func luajitDoFile(L *lua.LState) int {
	src, name, msg := readChunkFile(L)
	if msg != "" {
		L.Error(lua.LString(msg), 0)
	}
	fn, err := loadChunk(L, src, name)
	if err != nil {
		L.Error(lua.LString(err.Error()), 0)
	}
	top := L.GetTop()
	L.Push(fn)
	L.Call(0, lua.MultRet)
	return L.GetTop() - top
}

// readChunkFile reads the file argument 1 names (standard input without
// one), returning its source and chunk name, or LuaJIT's message.
func readChunkFile(L *lua.LState) (src, name, msg string) {
	if L.Get(1) == lua.LNil {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return "", "", "cannot read stdin: " + errnoText(err)
		}
		return string(b), "=stdin", ""
	}
	path := checkStr(L, 1)
	f, err := os.Open(path)
	if err != nil {
		return "", "", "cannot open " + path + ": " + errnoText(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return "", "", "cannot read " + path + ": " + errnoText(err)
	}
	return string(b), "@" + path, ""
}

// errnoText is C's strerror for err's errno ("No such file or directory"),
// Go's text otherwise.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	var perr *fs.PathError
	if errors.As(err, &perr) {
		return perr.Err.Error()
	}
	return err.Error()
}

// compileModuleFile compiles a Lua module file as gopher-lua's own searcher
// names it (the path, without Lua's "@").
func compileModuleFile(path string) (*lua.FunctionProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return CompileChunk(strings.NewReader(skipShebang(string(b))), path)
}

// skipShebang blanks a first line starting with '#', keeping the line
// count, as LuaJIT's loaders do.
func skipShebang(src string) string {
	if !strings.HasPrefix(src, "#") {
		return src
	}
	if i := strings.IndexByte(src, '\n'); i >= 0 {
		return src[i:]
	}
	return ""
}
