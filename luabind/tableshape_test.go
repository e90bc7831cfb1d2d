package luabind

import (
	"testing"

	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"
)

// A shaped table must be the table RawSetString builds: same lookups, same
// pairs order, and the same after Lua code adds, overwrites and removes keys
// (two tables of one shape must not share anything a write reaches).
func TestTableShapeIsAnOrdinaryTable(t *testing.T) {
	L := lua.NewState()
	defer L.Close()
	shape := newTableShape("header", "key", "value")
	vals := []lua.LValue{lua.LString("h"), lua.LString("k"), lua.LNumber(7)}

	shaped := shape.table(L, vals...)
	sibling := shape.table(L, vals...)
	plain := L.CreateTable(0, 3)
	for i, n := range shape.names {
		plain.RawSetString(n, vals[i])
	}
	arr := newArrayTable(L, lua.LNumber(1), lua.LString("two"), lua.LTrue)

	require.NoError(t, L.DoString(`
		function dump(t)
			local out = {}
			for k, v in pairs(t) do out[#out + 1] = tostring(k) .. "=" .. tostring(v) end
			return table.concat(out, ",")
		end
		function mutate(t)
			t.extra = 1
			t.key = nil
			t.value = "v2"
			t.more = 2
			t.key = "back"
			return t
		end`))
	dump := func(tb *lua.LTable) string {
		require.NoError(t, L.CallByParam(lua.P{Fn: L.GetGlobal("dump"), NRet: 1, Protect: true}, tb))
		defer L.Pop(1)
		return L.Get(-1).String()
	}
	mutate := func(tb *lua.LTable) {
		require.NoError(t, L.CallByParam(lua.P{Fn: L.GetGlobal("mutate"), NRet: 1, Protect: true}, tb))
		L.Pop(1)
	}

	require.Equal(t, "header=h,key=k,value=7", dump(shaped))
	require.Equal(t, dump(plain), dump(shaped))
	mutate(shaped)
	mutate(plain)
	require.Equal(t, dump(plain), dump(shaped))
	require.Equal(t, "header=h,key=k,value=7", dump(sibling), "a sibling saw another table's writes")
	require.Equal(t, "1=1,2=two,3=true", dump(arr))
	require.Equal(t, 3, arr.Len())

	t.Run("public API fallback", func(t *testing.T) {
		saved := cjsonDirectTables
		cjsonDirectTables = false
		defer func() { cjsonDirectTables = saved }()
		require.Equal(t, dump(shape.table(L, vals...)), dump(sibling))
		require.Equal(t, "1=1,2=two,3=true", dump(newArrayTable(L, lua.LNumber(1), lua.LString("two"), lua.LTrue)))
	})
}

// Every size allocTable handles (slots inline up to 8, then apart) gives
// tables that grow like any other, without touching a sibling's slots.
func TestAllocTableSizes(t *testing.T) {
	L := lua.NewState()
	defer L.Close()
	require.NoError(t, L.DoString(`
		function grow(t, n)
			for i = 1, 3 do t[n + i] = "a" .. i end
			t.grown = true
			local out = {}
			for k, v in pairs(t) do out[#out + 1] = tostring(k) .. "=" .. tostring(v) end
			return table.concat(out, ",") .. "#" .. #t
		end`))
	grow := func(tb *lua.LTable, n int) string {
		require.NoError(t, L.CallByParam(lua.P{Fn: L.GetGlobal("grow"), NRet: 1, Protect: true}, tb, lua.LNumber(n)))
		defer L.Pop(1)
		return L.Get(-1).String()
	}
	for n := 1; n <= 10; n++ {
		var names []string
		var vals []lua.LValue
		for i := range n {
			names = append(names, string(rune('a'+i)))
			vals = append(vals, lua.LNumber(i))
		}
		shape := newTableShape(names...)
		shaped, sibling := shape.table(L, vals...), shape.table(L, vals...)
		arr, arrSibling := newArrayTable(L, vals...), newArrayTable(L, vals...)
		plain, plainArr := L.CreateTable(0, 0), L.CreateTable(0, 0)
		for i, name := range names {
			plain.RawSetString(name, vals[i])
			plainArr.RawSetInt(i+1, vals[i])
		}
		require.Equal(t, grow(plain, n), grow(shaped, n), "n=%d", n)
		require.Equal(t, grow(plainArr, n), grow(arr, n), "n=%d", n)
		for i, name := range names {
			require.Equal(t, vals[i], sibling.RawGetString(name), "n=%d", n)
			require.Equal(t, vals[i], arrSibling.RawGetInt(i+1), "n=%d", n)
		}
		require.Equal(t, lua.LNil, sibling.RawGetString("grown"))
		require.Equal(t, n, arrSibling.Len(), "n=%d: a sibling array grew", n)
		require.Equal(t, lua.LNil, L.GetMetatable(shaped))
	}
}

// Compacting keeps every table's contents and pairs order, and the tables
// stay writable.
func TestCompactTablesKeepsContents(t *testing.T) {
	L := lua.NewState()
	defer L.Close()
	require.NoError(t, L.DoString(`
		lib = { sub = { 1, 2, 3, x = "y" }, f = print, n = 1 }
		lib.sub.self = lib
		setmetatable(lib, { __index = { inherited = true } })
		lib.gone = 1
		lib.gone = nil
		function dump(t)
			local out = {}
			for k, v in pairs(t) do out[#out + 1] = tostring(k) .. "=" .. type(v) end
			return table.concat(out, ",")
		end
		before = dump(lib) .. "|" .. dump(lib.sub)`))
	compactTables(L)
	require.NoError(t, L.DoString(`
		assert(before == dump(lib) .. "|" .. dump(lib.sub), before .. " ~= " .. dump(lib) .. "|" .. dump(lib.sub))
		assert(lib.inherited == true and lib.sub[3] == 3 and #lib.sub == 3 and lib.sub.self == lib)
		lib.sub[4] = 4
		lib.new = "v"
		assert(#lib.sub == 4 and lib.new == "v")`))
}
