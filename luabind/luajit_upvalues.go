package luabind

import (
	"reflect"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// Upvalues across a caught error. When gopher-lua raises an error with no
// message handler set, it closes every open upvalue of the state: those of
// the frames the error unwinds, as Lua does, but also those of the frames
// still running below the pcall. A closure then stops sharing its local
// with the function that is still using it:
//
//	local count = 0
//	local function inc() count = count + 1 end
//	inc()
//	pcall(error, "x")
//	inc()
//	ngx.say(count) -- 2 under LuaJIT; 1 under plain gopher-lua
//
// luaserve's pcall and xpcall run their function with gopher-lua's
// "handler set" flag up, so that raising closes nothing, and luajitPanic,
// which runs at the raise while the failing frames are still there, closes
// the upvalues of the frames the error leaves: those at or above the base
// of the innermost protectedCall, which is Lua 5.1's luaF_close(L, oldtop).
// The flag and the list of open upvalues are unexported fields; their
// layout is checked when the package loads, and without it pcall keeps
// gopher-lua's behaviour.

// upvalueFields holds the offsets of LState.uvcache, LState.hasErrorFunc,
// Upvalue.next and Upvalue.index, with ok when all have the expected types.
var upvalueFields = func() (f struct {
	uvcache, hasErrorFunc, next, index uintptr
	ok                                 bool
},
) {
	uvPtr := reflect.TypeFor[*lua.Upvalue]()
	field := func(t reflect.Type, name string, want reflect.Type) (uintptr, bool) {
		sf, ok := t.FieldByName(name)
		if !ok || sf.Type != want || len(sf.Index) != 1 {
			return 0, false
		}
		return sf.Offset, true
	}
	var ok1, ok2, ok3, ok4 bool
	f.uvcache, ok1 = field(reflect.TypeFor[lua.LState](), "uvcache", uvPtr)
	f.hasErrorFunc, ok2 = field(reflect.TypeFor[lua.LState](), "hasErrorFunc", reflect.TypeFor[bool]())
	f.next, ok3 = field(reflect.TypeFor[lua.Upvalue](), "next", uvPtr)
	f.index, ok4 = field(reflect.TypeFor[lua.Upvalue](), "index", reflect.TypeFor[int]())
	f.ok = ok1 && ok2 && ok3 && ok4
	return f
}()

// protectedCallOf is protectedCallFunction, reached through a variable set
// at init: protectedCall's panic function calls closeUnwoundUpvalues, which
// would otherwise make an initialisation cycle.
var protectedCallOf func() *lua.LFunction

func init() { protectedCallOf = protectedCallFunction }

func uvcacheOf(L *lua.LState) **lua.Upvalue {
	return (**lua.Upvalue)(unsafe.Add(unsafe.Pointer(L), upvalueFields.uvcache))
}

func uvNext(uv *lua.Upvalue) **lua.Upvalue {
	return (**lua.Upvalue)(unsafe.Add(unsafe.Pointer(uv), upvalueFields.next))
}

func uvIndex(uv *lua.Upvalue) int {
	return *(*int)(unsafe.Add(unsafe.Pointer(uv), upvalueFields.index))
}

// protectedPCall is L.PCall for pcall and xpcall: raising an error inside
// closes no upvalue (luajitPanic closes the unwound frames' own), and the
// flag is restored afterwards, where PCall would clear it even for an
// enclosing protected call that had set it.
func protectedPCall(L *lua.LState, nargs int, handler *lua.LFunction) error {
	if !upvalueFields.ok {
		return L.PCall(nargs, lua.MultRet, handler)
	}
	flag := (*bool)(unsafe.Add(unsafe.Pointer(L), upvalueFields.hasErrorFunc))
	prev := *flag
	*flag = true
	err := L.PCall(nargs, lua.MultRet, handler)
	*flag = prev
	return err
}

// closeUnwoundUpvalues closes the open upvalues at or above the base of the
// innermost protectedCall frame, if there is one: the locals of the frames
// the error being raised unwinds.
func closeUnwoundUpvalues(L *lua.LState) {
	if !upvalueFields.ok || *uvcacheOf(L) == nil {
		return
	}
	pc := protectedCallOf()
	for level := 0; ; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			return
		}
		if f, err := L.GetInfo("f", dbg, lua.LNil); err == nil && f == pc {
			closeUpvaluesFrom(L, frameField(dbg, "LocalBase"))
			return
		}
	}
}

// closeUpvaluesFrom closes the open upvalues of registry slots base and
// above and drops them from the state's list (kept in ascending order of
// slot), as gopher-lua's closeUpvalues does.
func closeUpvaluesFrom(L *lua.LState, base int) {
	link := uvcacheOf(L)
	for *link != nil && uvIndex(*link) < base {
		link = uvNext(*link)
	}
	uv := *link
	*link = nil
	for ; uv != nil; uv = *uvNext(uv) {
		uv.Close()
	}
}
