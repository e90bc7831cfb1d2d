package luabind

import (
	"math"
	"math/big"
	"math/bits"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// appendLuaJITNumber formats n as LuaJIT's tostring, `..` and
// table.concat do: "%.14g" like AppendNumber, except that LuaJIT's own
// formatter rounds a value exactly half-way at the 14th digit away from
// zero (123456789012345 is 1.2345678901235e+14), where glibc's printf —
// lua-nginx-module's ngx.say — and Go round it to even.
func appendLuaJITNumber(dst []byte, n float64) []byte {
	if halfwayAt14(n) {
		n = math.Nextafter(n, math.Copysign(math.Inf(1), n))
	}
	return AppendNumber(dst, n)
}

// pow5[b] is 5^b, for the b up to 22 whose products can have 15 digits.
var pow5 = func() (p [23]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 5
	}
	return
}()

// halfwayAt14 reports whether n's exact decimal value has 15 significant
// digits, the last a 5: the one case where rounding to 14 digits is a tie.
func halfwayAt14(n float64) bool {
	if a := math.Abs(n); a < 1e14 && a == math.Trunc(a) || math.IsInf(n, 0) || math.IsNaN(n) {
		// Integers of up to 14 digits, the most common numbers, print
		// whole.
		return false
	}
	frac, exp := math.Frexp(math.Abs(n))
	m := uint64(frac * (1 << 53)) // |n| = m * 2^e exactly
	e := exp - 53
	tz := bits.TrailingZeros64(m)
	m >>= tz
	e += tz
	if e < 0 {
		// |n| = m * 5^b / 10^b: its digits are those of m * 5^b (odd
		// and a multiple of 5, so ending in 5), which has more than 15
		// from b = 23 on.
		b := -e
		if b >= len(pow5) {
			return false
		}
		hi, lo := bits.Mul64(m, pow5[b])
		return hi == 0 && lo >= 1e14 && lo < 1e15
	}
	// An integer: 15 digits ending in 5, then zeros.
	var v uint64
	if bits.Len64(m)+e < 64 {
		v = m << e
	} else {
		x, _ := new(big.Float).SetFloat64(math.Abs(n)).Int(nil)
		ten := big.NewInt(10)
		r := new(big.Int)
		for {
			q, rem := new(big.Int).QuoRem(x, ten, r)
			if rem.Sign() != 0 {
				break
			}
			x = q
		}
		if !x.IsUint64() {
			return false
		}
		v = x.Uint64()
	}
	for v%10 == 0 {
		v /= 10
	}
	return v%10 == 5 && v >= 1e14 && v < 1e15
}

// luajitConcat is what a rewritten `..` chain calls (see CompileChunk):
// arguments are the operands, then the chain's operand descriptor. Strings
// and numbers are joined, numbers formatted as LuaJIT's tostring does.
func luajitConcat(L *lua.LState) int {
	n := L.GetTop() - 1
	size := 0
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			size += len(v)
		case lua.LNumber:
			size += 24
		default:
			return concatSlow(L, n)
		}
	}
	var b strings.Builder
	b.Grow(size)
	var num [32]byte
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			b.WriteString(string(v))
		case lua.LNumber:
			b.Write(appendLuaJITNumber(num[:0], float64(v)))
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

func concatable(v lua.LValue) bool {
	switch v.(type) {
	case lua.LString, lua.LNumber:
		return true
	}
	return false
}

// concatSlow is LuaJIT's lj_meta_cat for a chain with an operand that is
// neither string nor number: from the right, a run of strings and numbers
// is joined, and where one of the two rightmost operands is not, __concat of
// the left one, else of the right one, is called with both. The result takes
// the left operand's place, and its name if an error reports it, as it
// takes the left operand's slot in LuaJIT.
func concatSlow(L *lua.LState, n int) int {
	vals := make([]lua.LValue, n)
	for i := range vals {
		vals[i] = L.Get(i + 1)
	}
	top := n - 1
	for top > 0 {
		left, right := vals[top-1], vals[top]
		if concatable(left) && concatable(right) {
			first := top - 1
			for first > 0 && concatable(vals[first-1]) {
				first--
			}
			var b []byte
			for _, v := range vals[first : top+1] {
				if s, ok := v.(lua.LString); ok {
					b = append(b, s...)
				} else {
					b = appendLuaJITNumber(b, float64(v.(lua.LNumber)))
				}
			}
			vals[first] = lua.LString(b)
			top = first
			continue
		}
		mm := L.GetMetaField(left, "__concat")
		if mm == lua.LNil {
			mm = L.GetMetaField(right, "__concat")
		}
		if mm == lua.LNil {
			bad := top - 1
			if concatable(left) {
				bad = top
			}
			desc, _ := L.Get(n + 1).(lua.LString)
			L.RaiseError("%s", opError("concatenate", operandName(string(desc), bad), vals[bad]))
		}
		L.Push(mm)
		L.Push(left)
		L.Push(right)
		L.Call(2, 1)
		vals[top-1] = L.Get(-1)
		L.Pop(1)
		top--
	}
	L.Push(vals[0])
	return 1
}

// operandName decodes operand i's entry of a chain descriptor as LuaJIT
// names a slot: "local 'x'", "global 'x'", "upvalue 'x'", "field 'x'", or
// "" when it has no name.
func operandName(desc string, i int) string {
	for ; i > 0; i-- {
		j := strings.IndexByte(desc, 0)
		if j < 0 {
			return ""
		}
		desc = desc[j+1:]
	}
	if j := strings.IndexByte(desc, 0); j >= 0 {
		desc = desc[:j]
	}
	if desc == "" {
		return ""
	}
	var kind string
	switch desc[0] {
	case 'l':
		kind = "local"
	case 'g':
		kind = "global"
	case 'u':
		kind = "upvalue"
	case 'f':
		kind = "field"
	default:
		return ""
	}
	return kind + " '" + desc[1:] + "'"
}

// opError is LuaJIT's wording of an operation on a value of the wrong type:
// "attempt to <op> <kind> '<name>' (a <type> value)", or without a name
// "attempt to <op> a <type> value".
func opError(op, name string, v lua.LValue) string {
	t := typeName(v)
	if name == "" {
		return "attempt to " + op + " a " + t + " value"
	}
	return "attempt to " + op + " " + name + " (a " + t + " value)"
}

// luajitTableConcat is LuaJIT's table.concat(t [, sep [, i [, j]]]): raw
// reads, numbers formatted as tostring does, and LuaJIT's messages.
func luajitTableConcat(L *lua.LState) int {
	t, ok := L.Get(1).(*lua.LTable)
	if !ok {
		apiArgError(L, 1, "table expected, got "+argTypeName(L, 1))
	}
	var sep string
	if L.Get(2) != lua.LNil {
		sep = checkStr(L, 2)
	}
	i := optInt32(L, 3, 1)
	e := int32(t.Len())
	if L.Get(4) != lua.LNil {
		e = optInt32(L, 4, 0)
	}
	var b []byte
	for ; i <= e; i++ {
		switch v := t.RawGetInt(int(i)).(type) {
		case lua.LString:
			b = append(b, v...)
		case lua.LNumber:
			b = appendLuaJITNumber(b, float64(v))
		default:
			apiError(L, "invalid value (%s) at index %d in table for 'concat'", typeName(v), i)
		}
		if i == e {
			// i++ would overflow when e is the largest int32.
			break
		}
		b = append(b, sep...)
	}
	L.Push(lua.LString(b))
	return 1
}

// optInt32 is lj_lib_optint: nil or absent gives def; numbers and numeric
// strings are truncated to an int32.
func optInt32(L *lua.LState, n int, def int32) int32 {
	if L.Get(n) == lua.LNil {
		return def
	}
	return int32(checkNumber(L, n))
}
