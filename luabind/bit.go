package luabind

// The bit module: LuaBitOp as built into LuaJIT 2.1 (OpenResty's luajit2).
// Arguments are Lua numbers normalised to 32 bits the way LuaJIT does
// (lj_num2bit: round to nearest even, modulo 2^32); results are signed 32-bit
// numbers.

import (
	"math"
	"math/bits"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

var bitFuncs = map[string]lua.LGFunction{
	"tobit":   bitTobit,
	"tohex":   bitTohex,
	"bnot":    bitBnot,
	"band":    bitBand,
	"bor":     bitBor,
	"bxor":    bitBxor,
	"lshift":  bitLshift,
	"rshift":  bitRshift,
	"arshift": bitArshift,
	"rol":     bitRol,
	"ror":     bitRor,
	"bswap":   bitBswap,
}

// BitLoader is the loader for require "bit".
func BitLoader(L *lua.LState) int {
	mod := L.CreateTable(0, len(bitFuncs))
	for name, fn := range bitFuncs {
		mod.RawSetString(name, L.NewFunction(fn))
	}
	L.Push(mod)
	return 1
}

// num2bit is lj_num2bit: adding 2^52+2^51 leaves the integer, rounded to
// nearest even and taken modulo 2^32, in the low word of the double. The same
// IEEE addition in Go gives the same bits for every input, huge ones included.
func num2bit(f float64) int32 {
	if f != f {
		// x86's default NaN has an all-zero low word; Go's math.NaN() does not.
		return 0
	}
	return int32(uint32(math.Float64bits(f + 6755399441055744.0)))
}

// checkBit is lj_lib_checkbit for argument n of function fname.
func checkBit(L *lua.LState, n int, fname string) int32 {
	v := L.Get(n)
	switch x := v.(type) {
	case lua.LNumber:
		return num2bit(float64(x))
	case lua.LString:
		if f, ok := bitScanNumber(string(x)); ok {
			return num2bit(f)
		}
	}
	got := cjsonTypeName(v)
	if n > L.GetTop() {
		got = "no value"
	}
	cjsonArgError(L, n, fname, "number expected, got "+got)
	return 0
}

// bitScanNumber converts a string as LuaJIT's lj_strscan does for plain
// numbers: decimal, 0x hex (with optional fraction and p exponent), 0b
// binary, inf/infinity/nan, optional sign, surrounded by whitespace.
func bitScanNumber(s string) (float64, bool) {
	s = strings.Trim(s, " \t\n\v\f\r")
	if s == "" {
		return 0, false
	}
	body, sign := s, 1.0
	if body[0] == '-' || body[0] == '+' {
		if body[0] == '-' {
			sign = -1
		}
		body = body[1:]
	}
	switch {
	case body == "":
		return 0, false
	case strings.EqualFold(body, "inf") || strings.EqualFold(body, "infinity"):
		return math.Inf(int(sign)), true
	case strings.EqualFold(body, "nan"):
		return math.NaN(), true
	case len(body) > 2 && body[0] == '0' && body[1]|0x20 == 'b':
		var v float64
		for i := 2; i < len(body); i++ {
			if body[i] != '0' && body[i] != '1' {
				return 0, false
			}
			v = v*2 + float64(body[i]-'0')
		}
		return sign * v, true
	case len(body) > 1 && body[0] == '0' && body[1]|0x20 == 'x':
		n, f, ok := cjsonStrtodHex(body)
		return sign * f, ok && n == len(body)
	case !cjsonIsDigit(body[0]) && body[0] != '.':
		return 0, false
	}
	n, f := cjsonStrtod(body)
	return sign * f, n == len(body)
}

func pushBit(L *lua.LState, b int32) int {
	L.Push(lua.LNumber(b))
	return 1
}

func bitTobit(L *lua.LState) int { return pushBit(L, checkBit(L, 1, "tobit")) }

func bitBnot(L *lua.LState) int { return pushBit(L, ^checkBit(L, 1, "bnot")) }

func bitBswap(L *lua.LState) int {
	return pushBit(L, int32(bits.ReverseBytes32(uint32(checkBit(L, 1, "bswap")))))
}

func bitFold(L *lua.LState, fname string, op func(a, b int32) int32) int {
	acc := checkBit(L, 1, fname)
	for i, top := 2, L.GetTop(); i <= top; i++ {
		acc = op(acc, checkBit(L, i, fname))
	}
	return pushBit(L, acc)
}

func bitBand(L *lua.LState) int {
	return bitFold(L, "band", func(a, b int32) int32 { return a & b })
}

func bitBor(L *lua.LState) int {
	return bitFold(L, "bor", func(a, b int32) int32 { return a | b })
}

func bitBxor(L *lua.LState) int {
	return bitFold(L, "bxor", func(a, b int32) int32 { return a ^ b })
}

func bitShiftArgs(L *lua.LState, fname string) (uint32, uint) {
	b := uint32(checkBit(L, 1, fname))
	n := uint(checkBit(L, 2, fname)) & 31
	return b, n
}

func bitLshift(L *lua.LState) int {
	b, n := bitShiftArgs(L, "lshift")
	return pushBit(L, int32(b<<n))
}

func bitRshift(L *lua.LState) int {
	b, n := bitShiftArgs(L, "rshift")
	return pushBit(L, int32(b>>n))
}

func bitArshift(L *lua.LState) int {
	b, n := bitShiftArgs(L, "arshift")
	return pushBit(L, int32(b)>>n)
}

func bitRol(L *lua.LState) int {
	b, n := bitShiftArgs(L, "rol")
	return pushBit(L, int32(bits.RotateLeft32(b, int(n))))
}

func bitRor(L *lua.LState) int {
	b, n := bitShiftArgs(L, "ror")
	return pushBit(L, int32(bits.RotateLeft32(b, -int(n))))
}

// bitTohex follows lib_bit.c of OpenResty's LuaJIT 2.1 branch: n digits
// (default 8), uppercase for negative n, zero-padded past 8 digits, at most
// 254 digits; n = 0 gives "".
func bitTohex(L *lua.LState) int {
	b := uint32(checkBit(L, 1, "tohex"))
	n := int32(8)
	if L.GetTop() >= 2 {
		n = checkBit(L, 2, "tohex")
	}
	digits := "0123456789abcdef"
	if n < 0 {
		n = -n // -2^31 stays negative, as in C, and is clamped below
		digits = "0123456789ABCDEF"
	}
	if uint32(n) > 254 {
		n = 254
	}
	if n < 8 {
		b &= 1<<(4*uint32(n)) - 1
	}
	var buf [254]byte
	i := len(buf)
	for ; b != 0; b >>= 4 {
		i--
		buf[i] = digits[b&15]
	}
	for len(buf)-i < int(n) {
		i--
		buf[i] = '0'
	}
	L.Push(lua.LString(buf[i:]))
	return 1
}
