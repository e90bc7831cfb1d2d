package luabind

import (
	"maps"
	"slices"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// Result tables with fixed string keys (resty.bmemcached's {header = {opaque,
// CAS, status_code, status, type}, value}, two or more per request) cost
// about 2 µs and 18 allocations each through RawSetString: every key is
// boxed again, and the insertion-order index (k2i, keys) grows from empty.
// A tableShape holds what all tables of one key set share — the boxed keys
// and a filled k2i to clone (a small map's clone is one copy, no rehashing)
// — so that a table costs its own strdict and values only. The tables are
// exactly what RawSetString would build, insertion order included, and stay
// ordinary tables for the Lua code.

// tableShape is a list of string keys, in insertion order.
type tableShape struct {
	names []string
	keys  []lua.LValue
	k2i   map[lua.LValue]int
}

func newTableShape(names ...string) *tableShape {
	s := &tableShape{names: names, k2i: make(map[lua.LValue]int, len(names))}
	for i, n := range names {
		k := lua.LValue(lua.LString(n))
		s.keys = append(s.keys, k)
		s.k2i[k] = i
	}
	return s
}

// table returns a new table holding vs under the shape's keys, in order;
// vs holds no nil and one value per key.
func (s *tableShape) table(L *lua.LState, vs ...lua.LValue) *lua.LTable {
	if !cjsonDirectTables {
		t := L.CreateTable(0, len(s.names))
		for i, n := range s.names {
			t.RawSetString(n, vs[i])
		}
		return t
	}
	f, keys := allocTable(len(s.names))
	f.strdict = make(map[string]lua.LValue, len(s.names))
	for i, n := range s.names {
		f.strdict[n] = vs[i]
	}
	copy(keys, s.keys)
	f.keys = keys
	f.k2i = maps.Clone(s.k2i)
	return (*lua.LTable)(unsafe.Pointer(f))
}

// newArrayTable returns the array table {vs...}; vs holds no nil and is
// copied.
func newArrayTable(L *lua.LState, vs ...lua.LValue) *lua.LTable {
	if !cjsonDirectTables || len(vs) == 0 {
		return newArrayTablePublic(L, vs)
	}
	f, array := allocTable(len(vs))
	copy(array, vs)
	f.array = array
	return (*lua.LTable)(unsafe.Pointer(f))
}

// newArrayTablePublic is newArrayTable through gopher-lua's API only.
func newArrayTablePublic(L *lua.LState, vs []lua.LValue) *lua.LTable {
	t := L.CreateTable(len(vs), 0)
	for i, v := range vs {
		t.RawSetInt(i+1, v)
	}
	return t
}

// tableWith is a table and n value slots (A is [n]lua.LValue) in one
// allocation: the slots back the table's key list or array part, which a
// table of a known size needs anyway, so that it costs one allocation less.
// The slice handed out has capacity n, so a table that grows later moves
// its part elsewhere, as append does, and the slots are never shared.
type tableWith[A any] struct {
	t     cjsonLTable
	slots A
}

func allocTableWith[A any](n int) (*cjsonLTable, []lua.LValue) {
	p := &tableWith[A]{}
	p.t.Metatable = lua.LNil
	return &p.t, unsafe.Slice((*lua.LValue)(unsafe.Pointer(&p.slots)), n)
}

// allocTable returns an empty table, laid out as cjsonLTable, and n slots
// allocated with it (sizes past 8 get their own allocation).
func allocTable(n int) (*cjsonLTable, []lua.LValue) {
	switch {
	case n <= 1:
		return allocTableWith[[1]lua.LValue](n)
	case n == 2:
		return allocTableWith[[2]lua.LValue](n)
	case n == 3:
		return allocTableWith[[3]lua.LValue](n)
	case n <= 5:
		return allocTableWith[[5]lua.LValue](n)
	case n <= 8:
		return allocTableWith[[8]lua.LValue](n)
	}
	t := &cjsonLTable{Metatable: lua.LNil}
	return t, make([]lua.LValue, n)
}

// compactTables trims the tables reachable from the globals and the
// registry, once a VM's libraries are set up. gopher-lua's NewTable, and
// RawSetString on a table without a hash part, reserve 32 array slots and
// 32 hash slots; the library tables (ngx and its many small subtables,
// string, cjson …) hold a few entries each, so a VM carried about 130 KB of
// empty slots, times the VMs of the pool. The walk follows table values only
// and copies each part at its exact size, keeping the insertion order.
func compactTables(L *lua.LState) {
	if !cjsonDirectTables {
		return
	}
	seen := make(map[*lua.LTable]bool)
	var walk func(t *lua.LTable)
	walk = func(t *lua.LTable) {
		if seen[t] {
			return
		}
		seen[t] = true
		f := (*cjsonLTable)(unsafe.Pointer(t))
		if cap(f.array) > len(f.array) {
			f.array = slices.Clone(f.array)
			if len(f.array) == 0 {
				f.array = nil
			}
		}
		if f.strdict != nil {
			m := make(map[string]lua.LValue, len(f.strdict))
			maps.Copy(m, f.strdict)
			f.strdict = m
		}
		if f.dict != nil {
			m := make(map[lua.LValue]lua.LValue, len(f.dict))
			maps.Copy(m, f.dict)
			f.dict = m
		}
		if f.k2i != nil {
			m := make(map[lua.LValue]int, len(f.k2i))
			maps.Copy(m, f.k2i)
			f.k2i = m
			f.keys = slices.Clone(f.keys)
		}
		if mt, ok := t.Metatable.(*lua.LTable); ok {
			walk(mt)
		}
		t.ForEach(func(_, v lua.LValue) {
			if vt, ok := v.(*lua.LTable); ok {
				walk(vt)
			}
		})
	}
	walk(L.G.Global)
	walk(L.G.Registry)
}
