package luabind

// table.new and table.clear, the LuaJIT extensions OpenResty code uses to
// preallocate and reuse tables.

import (
	lua "github.com/yuin/gopher-lua"
)

// tableNewMaxPrealloc bounds what table.new reserves: the sizes are hints, and
// a huge hint must not let a script allocate gigabytes up front.
const tableNewMaxPrealloc = 1 << 16

// OpenTableExt adds table.new(narr, nrec) and table.clear(t) to the global
// table library and preloads the "table.new" and "table.clear" modules, which
// return the functions themselves as in LuaJIT.
func OpenTableExt(L *lua.LState) {
	newFn := L.NewFunction(tablexNew)
	clearFn := L.NewFunction(tablexClear)
	if tbl, ok := L.GetGlobal("table").(*lua.LTable); ok {
		tbl.RawSetString("new", newFn)
		tbl.RawSetString("clear", clearFn)
	}
	L.PreloadModule("table.new", func(L *lua.LState) int {
		L.Push(newFn)
		return 1
	})
	L.PreloadModule("table.clear", func(L *lua.LState) int {
		L.Push(clearFn)
		return 1
	})
}

func tablexCheckInt(L *lua.LState, n int, fname string) int {
	v := L.Get(n)
	switch x := v.(type) {
	case lua.LNumber:
		return int(x)
	case lua.LString:
		if f, ok := bitScanNumber(string(x)); ok {
			return int(f)
		}
	}
	got := cjsonTypeName(v)
	if n > L.GetTop() {
		got = "no value"
	}
	cjsonArgError(L, n, fname, "number expected, got "+got)
	return 0
}

func tablexClamp(n int) int {
	return min(max(n, 0), tableNewMaxPrealloc)
}

func tablexNew(L *lua.LState) int {
	narr := tablexCheckInt(L, 1, "new")
	nrec := tablexCheckInt(L, 2, "new")
	// LuaJIT's limits (LJ_MAX_ASIZE, LJ_MAX_HBITS); a negative narr means 0.
	if narr > 1<<27 || nrec < 0 || nrec > 1<<26 {
		L.Error(lua.LString("table overflow"), 0)
	}
	L.Push(L.CreateTable(tablexClamp(narr), tablexClamp(nrec)))
	return 1
}

// tablexClear empties t in place: references to t stay valid and its
// metatable is kept. Resetting the whole struct also drops gopher-lua's
// key-order index, which deleting keys one by one would leave growing.
func tablexClear(L *lua.LState) int {
	v := L.Get(1)
	t, ok := v.(*lua.LTable)
	if !ok {
		got := cjsonTypeName(v)
		if L.GetTop() < 1 {
			got = "no value"
		}
		cjsonArgError(L, 1, "clear", "table expected, got "+got)
	}
	*t = lua.LTable{Metatable: t.Metatable}
	return 0
}
