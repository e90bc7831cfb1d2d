package luabind

import (
	"math"

	"testing"

	"github.com/stretchr/testify/assert"
	lua "github.com/yuin/gopher-lua"
)

func TestBitNum2bit(t *testing.T) {
	tests := []struct {
		in   float64
		want int32
	}{
		{0, 0}, {1, 1}, {-1, -1}, {0.5, 0}, {1.5, 2}, {2.5, 2}, {-0.5, 0}, {-1.5, -2},
		{2147483647, 2147483647}, {2147483648, -2147483648}, {4294967295, -1}, {4294967296, 0},
		{4294967296 + 5, 5}, {1 << 52, 0}, {1<<53 + 3, 2}, {1e300, -2013235812},
		{math.Inf(1), 0}, {math.Inf(-1), 0}, {math.NaN(), 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, num2bit(tt.in), "num2bit(%v)", tt.in)
	}
}

func TestBitModule(t *testing.T) {
	tests := []struct {
		name, code, want string
	}{
		{"tobit", `return bit.tobit(0xffffffff), bit.tobit(2^32 + 1), bit.tobit("0x10"), bit.tobit(" 7 ")`, "-1\t1\t16\t7"},
		{"tohex", `return bit.tohex(1), bit.tohex(-1), bit.tohex(0x12345678, 4), bit.tohex(0xabcd, -4)`, "00000001\tffffffff\t5678\tABCD"},
		{"tohex wide", `return bit.tohex(1, 10), bit.tohex(1, 0), #bit.tohex(0, 255), #bit.tohex(-1, -2^31), bit.tohex(-1, -2^31):sub(-9)`, "0000000001\t\t254\t254\t0FFFFFFFF"},
		{"bnot", `return bit.bnot(0), bit.bnot(-1), bit.bnot(0x0f0f0f0f)`, "-1\t0\t-252645136"},
		{"band bor bxor", `return bit.band(0xff, 0x0f, 0x3), bit.bor(1, 2, 4, 8), bit.bxor(1, 3, 7)`, "3\t15\t5"},
		{"single arg", `return bit.band(5), bit.bor(-1), bit.bxor(0)`, "5\t-1\t0"},
		{"lshift", `return bit.lshift(1, 0), bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, 33), bit.lshift(1, -1)`, "1\t-2147483648\t1\t2\t-2147483648"},
		{"rshift", `return bit.rshift(-1, 28), bit.rshift(256, 4), bit.rshift(-1, 0)`, "15\t16\t-1"},
		{"arshift", `return bit.arshift(-256, 4), bit.arshift(256, 4), bit.arshift(-1, 31)`, "-16\t16\t-1"},
		{"rol ror", `return bit.rol(0x12345678, 12), bit.ror(0x12345678, 12), bit.rol(1, 32), bit.ror(1, 1)`, "1164411171\t1736516421\t1\t-2147483648"},
		{"bswap", `return bit.bswap(0x12345678), bit.bswap(0x78563412)`, "2018915346\t305419896"},
		{"no value", `return pcall(bit.band)`, "false\tbad argument #1 to 'band' (number expected, got no value)"},
		{"bad string", `return pcall(bit.tobit, "x1")`, "false\tbad argument #1 to 'tobit' (number expected, got string)"},
		{"missing shift", `return pcall(bit.lshift, 1)`, "false\tbad argument #2 to 'lshift' (number expected, got no value)"},
		{"bad later arg", `return pcall(bit.bxor, 1, 2, {})`, "false\tbad argument #3 to 'bxor' (number expected, got table)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			L := newCjsonTestState(t)
			assert.Equal(t, tt.want, cjsonEval(t, L, `local bit = require "bit" `+tt.code))
		})
	}
}

func TestTablexModule(t *testing.T) {
	tests := []struct {
		name, code, want string
	}{
		{"global new", `local t = table.new(4, 4) t[1] = 1 return type(t), #t`, "table\t1"},
		{"require new", `return require("table.new") == table.new, require("table.clear") == table.clear`, "true\ttrue"},
		{"clear keeps identity and metatable", `
			local mt = {} local t = setmetatable({1, 2, x = 3}, mt) local r = t
			table.clear(t)
			return r == t, #t, next(t), getmetatable(t) == mt`, "true\t0\tnil\ttrue"},
		{"clear then reuse", `
			local t = {} for i = 1, 100 do t["k" .. i] = i end
			table.clear(t) t.a = 1 t[1] = "x"
			local n = 0 for _ in pairs(t) do n = n + 1 end
			return n, t.a, t[1], t.k5`, "2\t1\tx\tnil"},
		{"clear while iterating", `
			local t = {a = 1, b = 2, 3} local seen = 0
			for k in pairs(t) do seen = seen + 1 table.clear(t) end
			return seen, next(t)`, "1\tnil"},
		{"huge sizes are hints", `local t = table.new(1e8, 0) t[1] = 1 return #t`, "1"},
		{"negative narr is zero", `return type(table.new(-5, 0))`, "table"},
		{"overflow", `return pcall(table.new, 0, -1)`, "false\ttable overflow"},
		{"bad arg", `return pcall(table.new, 1)`, "false\tbad argument #2 to 'new' (number expected, got no value)"},
		{"clear bad arg", `return pcall(table.clear, "x")`, "false\tbad argument #1 to 'clear' (table expected, got string)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			L := newCjsonTestState(t)
			assert.Equal(t, tt.want, cjsonEval(t, L, tt.code))
		})
	}
}

func BenchmarkBitBand(b *testing.B) {
	L := newCjsonTestState(b)
	if err := L.DoString(`local bit = require "bit" band = bit.band`); err != nil {
		b.Fatal(err)
	}
	fn := L.GetGlobal("band")
	b.ReportAllocs()
	for b.Loop() {
		L.Push(fn)
		L.Push(lua.LNumber(0x12345678))
		L.Push(lua.LNumber(0xff00ff))
		L.Call(2, 1)
		L.Pop(1)
	}
}
