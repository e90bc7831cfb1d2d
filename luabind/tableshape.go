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
	t := L.CreateTable(0, len(s.names))
	if !cjsonDirectTables {
		for i, n := range s.names {
			t.RawSetString(n, vs[i])
		}
		return t
	}
	f := (*cjsonLTable)(unsafe.Pointer(t))
	for i, n := range s.names {
		f.strdict[n] = vs[i]
	}
	f.keys = slices.Clone(s.keys)
	f.k2i = maps.Clone(s.k2i)
	return t
}

// newArrayTable returns the array table {vs...}; vs holds no nil and is
// copied.
func newArrayTable(L *lua.LState, vs ...lua.LValue) *lua.LTable {
	if !cjsonDirectTables || len(vs) == 0 {
		return newArrayTablePublic(L, vs)
	}
	t := L.CreateTable(0, 0)
	(*cjsonLTable)(unsafe.Pointer(t)).array = slices.Clone(vs)
	return t
}

// newArrayTablePublic is newArrayTable through gopher-lua's API only.
func newArrayTablePublic(L *lua.LState, vs []lua.LValue) *lua.LTable {
	t := L.CreateTable(len(vs), 0)
	for i, v := range vs {
		t.RawSetInt(i+1, v)
	}
	return t
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
