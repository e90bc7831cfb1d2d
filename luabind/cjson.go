package luabind

// The cjson and cjson.safe modules: lua-cjson 2.1 as OpenResty ships it (the
// openresty/lua-cjson fork), hand-written over gopher-lua.
//
// Behaviour, error texts and number formatting follow the C module byte for
// byte (checked by a differential test against LuaJIT + lua-cjson), with these
// documented differences:
//
//   - Object key order: lua-cjson emits keys in lua_next order, which depends
//     on LuaJIT's hash layout. gopher-lua has a different layout, so we emit the
//     array part (integer keys 1..n, as "1", "2", …) first and then the other
//     keys in insertion order — deterministic, unlike LuaJIT.
//   - The C stack limit (LUAI_MAXCSTACK = 8000 slots, which caps nesting near
//     8000 arrays or 4000 objects whatever encode_max_depth/decode_max_depth
//     say) is emulated, so error texts match and deep input cannot blow the Go
//     stack.
//   - Argument errors name the function as called through the module table
//     ('encode'), where LuaJIT names it from the call site ('?' under pcall).
//   - Decoded strings without escapes share memory with the input string (no
//     copy); a retained small value keeps its whole input alive.

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// cjsonLightUserdata stands in for a C lightuserdata: gopher-lua has only full
// userdata, whose tostring shows an address and which carry a mutable
// metatable. These values are immutable, so one instance can be shared by
// every VM of the process.
type cjsonLightUserdata struct{ repr string }

func (u *cjsonLightUserdata) String() string       { return u.repr }
func (u *cjsonLightUserdata) Type() lua.LValueType { return lua.LTUserData }

// CjsonNull is cjson.null (lua-cjson's NULL lightuserdata): type() is
// "userdata", tostring() is "userdata: NULL", it encodes as JSON null and
// decoded nulls are this value. It is one process-wide immutable value so that
// ngx.null == cjson.null holds in every VM, as in OpenResty.
var CjsonNull lua.LValue = &cjsonLightUserdata{repr: "userdata: NULL"}

// cjsonEmptyArray is cjson.empty_array, which encodes as [].
var cjsonEmptyArray lua.LValue = &cjsonLightUserdata{}

func init() {
	u := cjsonEmptyArray.(*cjsonLightUserdata)
	u.repr = fmt.Sprintf("userdata: %p", u)
}

const (
	cjsonVersion = "2.1.0.14"

	// LuaJIT's LUAI_MAXCSTACK: lua_checkstack fails beyond this many slots,
	// which is what really bounds lua-cjson's nesting.
	cjsonMaxCStack = 8000

	// Buffers grown past this are not kept between encode calls.
	cjsonKeepBufferMax = 1 << 20

	cjsonRegistryArrayMT      = "luabind.cjson.array_mt"
	cjsonRegistryEmptyArrayMT = "luabind.cjson.empty_array_mt"
)

// Values of encode_invalid_numbers, in lua-cjson's option order.
const (
	cjsonInvalidNumbersOff = iota
	cjsonInvalidNumbersOn
	cjsonInvalidNumbersNull
)

// cjsonConfig is one lua-cjson module instance (cjson.new() makes another).
// It belongs to a single VM, which runs one request at a time, so the scratch
// buffers need no locking.
type cjsonConfig struct {
	sparseConvert          bool
	sparseRatio            int
	sparseSafe             int
	encodeMaxDepth         int
	decodeMaxDepth         int
	encodeInvalidNumbers   int
	decodeInvalidNumbers   bool
	keepBuffer             bool
	precision              int
	emptyTableAsObject     bool
	decodeArrayWithArrayMT bool
	escapeForwardSlash     bool

	arrayMT      *lua.LTable
	emptyArrayMT *lua.LTable

	buf     []byte       // encode output, reused when keepBuffer
	scratch []byte       // decoded string with escapes
	vals    []lua.LValue // decoded values awaiting their table
	keys    []string     // decoded object keys awaiting their table

	// Per decode call, dropped at its end so that nothing of one input is
	// pinned by the next: slab is what remains of the chunk the built tables
	// take their key lists from, and lastKeys[depth] the key list of the
	// object last built at that depth, whose boxed keys a sibling with the
	// same keys (an array of records) reuses.
	slab     []lua.LValue
	lastKeys [cjsonKeyReuseDepth][]lua.LValue

	// publicTables makes the decoder build tables, and the encoder walk
	// them, through gopher-lua's API only, as when cjsonDirectTables is
	// false; tests compare the two.
	publicTables bool
}

func newCjsonConfig(L *lua.LState) *cjsonConfig {
	return &cjsonConfig{
		sparseRatio:          2,
		sparseSafe:           10,
		encodeMaxDepth:       1000,
		decodeMaxDepth:       1000,
		decodeInvalidNumbers: true,
		keepBuffer:           true,
		precision:            14,
		emptyTableAsObject:   true,
		escapeForwardSlash:   true,
		arrayMT:              cjsonRegistryTable(L, cjsonRegistryArrayMT),
		emptyArrayMT:         cjsonRegistryTable(L, cjsonRegistryEmptyArrayMT),
	}
}

// cjsonRegistryTable returns the VM-wide table stored in the registry under key,
// creating it on first use: lua-cjson keys array_mt and empty_array_mt by a
// static address, so every module instance in a VM shares them.
func cjsonRegistryTable(L *lua.LState, key string) *lua.LTable {
	reg := L.Get(lua.RegistryIndex).(*lua.LTable)
	if t, ok := reg.RawGetString(key).(*lua.LTable); ok {
		return t
	}
	t := L.CreateTable(0, 0)
	reg.RawSetString(key, t)
	return t
}

// CjsonLoader is the loader for require "cjson".
func CjsonLoader(L *lua.LState) int {
	L.Push(newCjsonModule(L, false))
	return 1
}

// CjsonSafeLoader is the loader for require "cjson.safe": encode and decode
// return nil, err instead of raising.
func CjsonSafeLoader(L *lua.LState) int {
	L.Push(newCjsonModule(L, true))
	return 1
}

func newCjsonModule(L *lua.LState, safe bool) *lua.LTable {
	cfg := newCjsonConfig(L)
	fns := map[string]lua.LGFunction{
		"encode":                       func(L *lua.LState) int { return cfg.luaEncode(L, safe) },
		"decode":                       func(L *lua.LState) int { return cfg.luaDecode(L, safe) },
		"encode_sparse_array":          cfg.luaEncodeSparseArray,
		"encode_max_depth":             cfg.luaEncodeMaxDepth,
		"decode_max_depth":             cfg.luaDecodeMaxDepth,
		"encode_number_precision":      cfg.luaEncodeNumberPrecision,
		"encode_keep_buffer":           cfg.luaEncodeKeepBuffer,
		"encode_invalid_numbers":       cfg.luaEncodeInvalidNumbers,
		"decode_invalid_numbers":       cfg.luaDecodeInvalidNumbers,
		"encode_empty_table_as_object": cfg.luaEncodeEmptyTableAsObject,
		"decode_array_with_array_mt":   cfg.luaDecodeArrayWithArrayMT,
		"encode_escape_forward_slash":  cfg.luaEncodeEscapeForwardSlash,
		"new": func(L *lua.LState) int {
			L.Push(newCjsonModule(L, safe))
			return 1
		},
	}
	mod := L.CreateTable(0, len(fns)+6)
	for name, fn := range fns {
		mod.RawSetString(name, L.NewFunction(fn))
	}
	mod.RawSetString("null", CjsonNull)
	mod.RawSetString("empty_array", cjsonEmptyArray)
	mod.RawSetString("array_mt", cfg.arrayMT)
	mod.RawSetString("empty_array_mt", cfg.emptyArrayMT)
	mod.RawSetString("_NAME", lua.LString("cjson"))
	mod.RawSetString("_VERSION", lua.LString(cjsonVersion))
	return mod
}

// cjsonArgError raises luaL_argerror's message without a position prefix,
// as a C function's error has none.
func cjsonArgError(L *lua.LState, n int, fname, msg string) {
	L.Error(lua.LString("bad argument #"+strconv.Itoa(n)+" to '"+fname+"' ("+msg+")"), 0)
}

// cjsonTypeName is lua_typename for a value (gopher-lua adds "channel").
func cjsonTypeName(v lua.LValue) string {
	return v.Type().String()
}

func (c *cjsonConfig) luaEncode(L *lua.LState, safe bool) int {
	if L.GetTop() != 1 {
		cjsonArgError(L, 1, "encode", "expected 1 argument")
	}
	buf, err := c.encode(c.buf[:0], L.Get(1))
	if err != nil {
		c.releaseBuffer(buf)
		if safe {
			L.Push(lua.LNil)
			L.Push(lua.LString(err.Error()))
			return 2
		}
		L.Error(lua.LString(err.Error()), 0)
	}
	L.Push(lua.LString(buf))
	c.releaseBuffer(buf)
	return 1
}

func (c *cjsonConfig) releaseBuffer(buf []byte) {
	if c.keepBuffer && cap(buf) <= cjsonKeepBufferMax {
		c.buf = buf[:0]
	} else {
		c.buf = nil
	}
}

func (c *cjsonConfig) luaDecode(L *lua.LState, safe bool) int {
	if L.GetTop() != 1 {
		cjsonArgError(L, 1, "decode", "expected 1 argument")
	}
	var s string
	switch v := L.Get(1).(type) {
	case lua.LString:
		s = string(v)
	case lua.LNumber:
		s = string(AppendLuaNumber(nil, float64(v)))
	default:
		msg := "bad argument #1 to 'decode' (string expected, got " + cjsonTypeName(v) + ")"
		if safe {
			return pushNilErr(L, msg)
		}
		L.Error(lua.LString(msg), 0)
	}
	v, err := c.decode(L, s)
	if err != nil {
		if safe {
			L.Push(lua.LNil)
			L.Push(lua.LString(err.Error()))
			return 2
		}
		L.Error(lua.LString(err.Error()), 0)
	}
	L.Push(v)
	return 1
}

/* ---------- configuration functions ---------- */

// cjsonArgInit is json_arg_init: at most n arguments, missing ones read as nil.
func cjsonArgInit(L *lua.LState, n int, fname string) {
	if L.GetTop() > n {
		cjsonArgError(L, n+1, fname, "found too many arguments")
	}
	// Pad so that results pushed later are not read back as arguments.
	for L.GetTop() < n {
		L.Push(lua.LNil)
	}
}

// cjsonIntegerOption is json_integer_option.
func cjsonIntegerOption(L *lua.LState, idx int, fname string, setting *int, lo, hi int) {
	if v := L.Get(idx); v != lua.LNil {
		n, ok := cjsonToNumber(v)
		if !ok {
			cjsonArgError(L, idx, fname, "number expected, got "+cjsonTypeName(v))
		}
		i := int(n) // luaL_checkinteger truncates
		if i < lo || i > hi || math.IsNaN(float64(n)) {
			// lua-cjson checks argument #1 whichever option is bad.
			cjsonArgError(L, 1, fname, fmt.Sprintf("expected integer between %d and %d", lo, hi))
		}
		*setting = i
	}
	L.Push(lua.LNumber(*setting))
}

// cjsonEnumOption is json_enum_option: a boolean, or one of the named options.
func cjsonEnumOption(L *lua.LState, idx int, fname string, setting *int, options []string) {
	if v := L.Get(idx); v != lua.LNil {
		if b, ok := v.(lua.LBool); ok {
			*setting = 0
			if b {
				*setting = 1
			}
		} else {
			s, ok := v.(lua.LString)
			if !ok {
				if n, isNum := v.(lua.LNumber); isNum {
					s, ok = lua.LString(AppendLuaNumber(nil, float64(n))), true
				}
			}
			if !ok {
				cjsonArgError(L, idx, fname, "string expected, got "+cjsonTypeName(v))
			}
			found := false
			for i, o := range options {
				if string(s) == o {
					*setting, found = i, true
					break
				}
			}
			if !found {
				cjsonArgError(L, idx, fname, "invalid option '"+string(s)+"'")
			}
		}
	}
	if *setting <= 1 {
		L.Push(lua.LBool(*setting == 1))
	} else {
		L.Push(lua.LString(options[*setting]))
	}
}

var cjsonOnOff = []string{"off", "on"}

func cjsonBoolOption(L *lua.LState, idx int, fname string, setting *bool) {
	i := 0
	if *setting {
		i = 1
	}
	cjsonEnumOption(L, idx, fname, &i, cjsonOnOff)
	*setting = i == 1
}

func cjsonToNumber(v lua.LValue) (lua.LNumber, bool) {
	switch x := v.(type) {
	case lua.LNumber:
		return x, true
	case lua.LString:
		if n, err := strconv.ParseFloat(strings.TrimSpace(string(x)), 64); err == nil {
			return lua.LNumber(n), true
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(x)), 0, 64); err == nil {
			return lua.LNumber(n), true
		}
	}
	return 0, false
}

const cjsonMaxInt32 = math.MaxInt32

func (c *cjsonConfig) luaEncodeSparseArray(L *lua.LState) int {
	const f = "encode_sparse_array"
	cjsonArgInit(L, 3, f)
	cjsonBoolOption(L, 1, f, &c.sparseConvert)
	cjsonIntegerOption(L, 2, f, &c.sparseRatio, 0, cjsonMaxInt32)
	cjsonIntegerOption(L, 3, f, &c.sparseSafe, 0, cjsonMaxInt32)
	return 3
}

func (c *cjsonConfig) luaEncodeMaxDepth(L *lua.LState) int {
	cjsonArgInit(L, 1, "encode_max_depth")
	cjsonIntegerOption(L, 1, "encode_max_depth", &c.encodeMaxDepth, 1, cjsonMaxInt32)
	return 1
}

func (c *cjsonConfig) luaDecodeMaxDepth(L *lua.LState) int {
	cjsonArgInit(L, 1, "decode_max_depth")
	cjsonIntegerOption(L, 1, "decode_max_depth", &c.decodeMaxDepth, 1, cjsonMaxInt32)
	return 1
}

func (c *cjsonConfig) luaEncodeNumberPrecision(L *lua.LState) int {
	// The OpenResty fork allows up to 16 digits (upstream 2.1.0: 14).
	cjsonArgInit(L, 1, "encode_number_precision")
	cjsonIntegerOption(L, 1, "encode_number_precision", &c.precision, 1, 16)
	return 1
}

func (c *cjsonConfig) luaEncodeKeepBuffer(L *lua.LState) int {
	cjsonArgInit(L, 1, "encode_keep_buffer")
	cjsonBoolOption(L, 1, "encode_keep_buffer", &c.keepBuffer)
	if !c.keepBuffer {
		c.buf = nil
	}
	return 1
}

var cjsonInvalidNumberOptions = []string{"off", "on", "null"}

func (c *cjsonConfig) luaEncodeInvalidNumbers(L *lua.LState) int {
	cjsonArgInit(L, 1, "encode_invalid_numbers")
	cjsonEnumOption(L, 1, "encode_invalid_numbers", &c.encodeInvalidNumbers, cjsonInvalidNumberOptions)
	return 1
}

func (c *cjsonConfig) luaDecodeInvalidNumbers(L *lua.LState) int {
	cjsonArgInit(L, 1, "decode_invalid_numbers")
	cjsonBoolOption(L, 1, "decode_invalid_numbers", &c.decodeInvalidNumbers)
	return 1
}

func (c *cjsonConfig) luaEncodeEmptyTableAsObject(L *lua.LState) int {
	cjsonArgInit(L, 1, "encode_empty_table_as_object")
	cjsonBoolOption(L, 1, "encode_empty_table_as_object", &c.emptyTableAsObject)
	return 1
}

func (c *cjsonConfig) luaDecodeArrayWithArrayMT(L *lua.LState) int {
	cjsonArgInit(L, 1, "decode_array_with_array_mt")
	cjsonBoolOption(L, 1, "decode_array_with_array_mt", &c.decodeArrayWithArrayMT)
	return 1
}

func (c *cjsonConfig) luaEncodeEscapeForwardSlash(L *lua.LState) int {
	cjsonArgInit(L, 1, "encode_escape_forward_slash")
	cjsonBoolOption(L, 1, "encode_escape_forward_slash", &c.escapeForwardSlash)
	return 1
}

/* ---------- encoder ---------- */

// cjsonError is an encode or decode failure; its text is lua-cjson's.
type cjsonError string

func (e cjsonError) Error() string { return string(e) }

func cjsonSerialiseError(v lua.LValue, reason string) error {
	return cjsonError("Cannot serialise " + cjsonTypeName(v) + ": " + reason)
}

// encode appends the JSON text of v to dst. Along the recursion, depth is
// the table nesting and top the Lua stack slots lua-cjson would be using,
// to reproduce its lua_checkstack failures.
func (c *cjsonConfig) encode(dst []byte, v lua.LValue) ([]byte, error) {
	return c.appendValue(dst, v, 0, 1)
}

func (c *cjsonConfig) appendValue(dst []byte, v lua.LValue, depth, top int) ([]byte, error) {
	switch x := v.(type) {
	case lua.LString:
		return c.appendString(dst, string(x)), nil
	case lua.LNumber:
		return c.appendNumber(dst, v, float64(x))
	case lua.LBool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case *lua.LNilType:
		return append(dst, "null"...), nil
	case *lua.LTable:
		return c.appendTable(dst, x, depth+1, top)
	case *cjsonLightUserdata:
		if v == CjsonNull {
			return append(dst, "null"...), nil
		}
		if v == cjsonEmptyArray {
			return append(dst, "[]"...), nil
		}
	}
	return dst, cjsonSerialiseError(v, "type not supported")
}

func (c *cjsonConfig) appendNumber(dst []byte, v lua.LValue, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		switch c.encodeInvalidNumbers {
		case cjsonInvalidNumbersOff:
			return dst, cjsonSerialiseError(v, "must not be NaN or Inf")
		case cjsonInvalidNumbersNull:
			return append(dst, "null"...), nil
		}
		if math.IsNaN(f) {
			// Some libcs print "-nan"; lua-cjson always writes "nan".
			return append(dst, "nan"...), nil
		}
	}
	return cjsonAppendNumberG(dst, f, c.precision), nil
}

func (c *cjsonConfig) appendTable(dst []byte, t *lua.LTable, depth, top int) ([]byte, error) {
	if depth > c.encodeMaxDepth || top+3 > cjsonMaxCStack {
		return dst, cjsonError("Cannot serialise, excessive nesting (" + strconv.Itoa(depth) + ")")
	}
	mt, _ := t.Metatable.(*lua.LTable)
	if mt != nil && mt == c.arrayMT {
		return c.appendArray(dst, t, t.Len(), depth, top)
	}
	n, err := c.arrayLength(t)
	if err != nil {
		return dst, err
	}
	if n > 0 || (n == 0 && !c.emptyTableAsObject) {
		// n < 0 (not an array) falls through to the object case.
		return c.appendArray(dst, t, n, depth, top)
	}
	if n == 0 && mt != nil && mt == c.emptyArrayMT {
		return append(dst, "[]"...), nil
	}
	return c.appendObject(dst, t, depth, top)
}

// arrayLength is lua_array_length: the largest key if every key is an
// integer >= 1, else -1; an excessively sparse array is an error unless
// encode_sparse_array converts it to an object.
func (c *cjsonConfig) arrayLength(t *lua.LTable) (int, error) {
	// The array part is read by index: Next would box every key.
	maxN := t.MaxN()
	items := 0
	for i := 1; i <= maxN; i++ {
		if t.RawGetInt(i) != lua.LNil {
			items++
		}
	}
	max := maxN
	var k lua.LValue = lua.LNil
	if maxN > 0 {
		k = lua.LNumber(maxN)
	}
	for {
		if k, _ = t.Next(k); k == lua.LNil {
			break
		}
		n, ok := k.(lua.LNumber)
		if !ok || n < 1 || math.Floor(float64(n)) != float64(n) {
			return -1, nil
		}
		// C compares the double key with the int maximum, then stores the
		// key in that int: x86 turns keys >= 2^31 into INT_MIN, and a
		// negative length then makes the table an object.
		if float64(n) > float64(max) {
			max = cjsonDoubleToInt(float64(n))
		}
		items++
	}
	if c.sparseRatio > 0 && max > items*c.sparseRatio && max > c.sparseSafe {
		if !c.sparseConvert {
			return -1, cjsonError("Cannot serialise table: excessively sparse array")
		}
		return -1, nil
	}
	return max, nil
}

// cjsonDoubleToInt is C's (int) conversion of a double as x86's cvttsd2si
// does it: out-of-range values become INT_MIN.
func cjsonDoubleToInt(f float64) int {
	if f >= 1<<31 || f < -(1<<31) || f != f {
		return math.MinInt32
	}
	return int(f)
}

func cjsonRawGetIndex(t *lua.LTable, i int) lua.LValue {
	if i < lua.MaxArrayIndex {
		return t.RawGetInt(i)
	}
	return t.RawGet(lua.LNumber(i))
}

func (c *cjsonConfig) appendArray(dst []byte, t *lua.LTable, n, depth, top int) ([]byte, error) {
	dst = append(dst, '[')
	var err error
	for i := 1; i <= n; i++ {
		if i > 1 {
			dst = append(dst, ',')
		}
		if dst, err = c.appendValue(dst, cjsonRawGetIndex(t, i), depth, top+1); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

func (c *cjsonConfig) appendObject(dst []byte, t *lua.LTable, depth, top int) ([]byte, error) {
	if cjsonDirectTables && !c.publicTables {
		return c.appendObjectDirect(dst, (*cjsonLTable)(unsafe.Pointer(t)), depth, top)
	}
	dst = append(dst, '{')
	var err error
	first := true
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		if dst, err = c.appendMember(dst, k, v, first, depth, top); err != nil {
			return dst, err
		}
		first = false
	}
	return append(dst, '}'), nil
}

// appendObjectDirect is appendObject walking the table's fields in the order
// Next visits them (non-nil array slots, then keys whose value is not nil),
// without Next's k2i lookup per key.
func (c *cjsonConfig) appendObjectDirect(dst []byte, t *cjsonLTable, depth, top int) ([]byte, error) {
	dst = append(dst, '{')
	var err error
	first := true
	for i, v := range t.array {
		if v == lua.LNil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		// An integer key never fails appendNumber; this spares boxing it.
		dst = append(dst, '"')
		dst = cjsonAppendNumberG(dst, float64(i+1), c.precision)
		dst = append(dst, '"', ':')
		if dst, err = c.appendValue(dst, v, depth, top+2); err != nil {
			return dst, err
		}
	}
	if len(t.strdict) == 0 && len(t.dict) == 0 {
		return append(dst, '}'), nil // where Next stops too, whatever keys holds
	}
	for _, k := range t.keys {
		var v lua.LValue
		if s, ok := k.(lua.LString); ok {
			v = t.strdict[string(s)]
		} else {
			v = t.dict[k]
		}
		if v == nil || v == lua.LNil {
			continue // deleted: keys keeps it
		}
		if dst, err = c.appendMember(dst, k, v, first, depth, top); err != nil {
			return dst, err
		}
		first = false
	}
	return append(dst, '}'), nil
}

func (c *cjsonConfig) appendMember(dst []byte, k, v lua.LValue, first bool, depth, top int) ([]byte, error) {
	if !first {
		dst = append(dst, ',')
	}
	var err error
	switch key := k.(type) {
	case lua.LString:
		dst = c.appendString(dst, string(key))
		dst = append(dst, ':')
	case lua.LNumber:
		dst = append(dst, '"')
		if dst, err = c.appendNumber(dst, k, float64(key)); err != nil {
			return dst, err
		}
		dst = append(dst, '"', ':')
	default:
		return dst, cjsonSerialiseError(k, "table key must be a number or string")
	}
	return c.appendValue(dst, v, depth, top+2)
}

// cjsonEscapeTable is lua-cjson's char2escape table: "" means copy the byte.
var cjsonEscapeTable = func() (t [256]string) {
	const hex = "0123456789abcdef"
	for i := 0; i < 0x20; i++ {
		t[i] = `\u00` + string(hex[i>>4]) + string(hex[i&15])
	}
	t['\b'], t['\t'], t['\n'], t['\f'], t['\r'] = `\b`, `\t`, `\n`, `\f`, `\r`
	t['"'], t['\\'], t['/'] = `\"`, `\\`, `\/`
	t[0x7f] = `\u007f`
	return t
}()

func (c *cjsonConfig) appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		esc := cjsonEscapeTable[s[i]]
		if esc == "" || (s[i] == '/' && !c.escapeForwardSlash) {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, esc...)
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

var cjsonPow10 = func() (t [17]float64) {
	t[0] = 1
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] * 10
	}
	return t
}()

// cjsonAppendNumberG appends f formatted as C's printf("%.<prec>g"), with "nan"
// for every NaN (LuaJIT's tostring and lua-cjson never print "-nan").
func cjsonAppendNumberG(dst []byte, f float64, prec int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	}
	// Integers that fit in prec digits print as such; this skips the float
	// formatter for the common case.
	if a := math.Abs(f); a < cjsonPow10[prec] && f == math.Trunc(f) {
		if f == 0 && math.Signbit(f) {
			return append(dst, "-0"...)
		}
		return strconv.AppendInt(dst, int64(f), 10)
	}
	return strconv.AppendFloat(dst, f, 'g', prec, 64)
}

// AppendLuaNumber appends f as LuaJIT's tostring formats numbers ("%.14g",
// "inf", "-inf", "nan", "-0"). gopher-lua's own tostring differs (e.g.
// 0.1+0.2, 1e15, -0, inf, nan), so ngx.say/ngx.print and the like should use
// this to print numbers as OpenResty does.
func AppendLuaNumber(dst []byte, f float64) []byte {
	return cjsonAppendNumberG(dst, f, 14)
}

/* ---------- decoder ---------- */

type cjsonTokenType uint8

const (
	cjTObjBegin cjsonTokenType = iota
	cjTObjEnd
	cjTArrBegin
	cjTArrEnd
	cjTString
	cjTNumber
	cjTBoolean
	cjTNull
	cjTColon
	cjTComma
	cjTEnd
	cjTWhitespace
	cjTError
	cjTUnknown
)

var cjsonTokenName = [...]string{
	"T_OBJ_BEGIN", "T_OBJ_END", "T_ARR_BEGIN", "T_ARR_END", "T_STRING",
	"T_NUMBER", "T_BOOLEAN", "T_NULL", "T_COLON", "T_COMMA", "T_END",
	"T_WHITESPACE", "T_ERROR", "T_UNKNOWN",
}

// cjsonCh2Token is lua-cjson's first-character classification.
var cjsonCh2Token = func() (t [256]cjsonTokenType) {
	for i := range t {
		t[i] = cjTError
	}
	t[0] = cjTEnd
	t[' '], t['\t'], t['\r'], t['\n'] = cjTWhitespace, cjTWhitespace, cjTWhitespace, cjTWhitespace
	t['{'], t['}'], t['['], t[']'], t[':'], t[','] = cjTObjBegin, cjTObjEnd, cjTArrBegin, cjTArrEnd, cjTColon, cjTComma
	for _, ch := range "fiInNt\"+-0123456789" {
		t[ch] = cjTUnknown
	}
	return t
}()

// cjsonEscape2Char is lua-cjson's table for the byte after a backslash.
var cjsonEscape2Char = func() (t [256]byte) {
	t['"'], t['\\'], t['/'] = '"', '\\', '/'
	t['b'], t['t'], t['n'], t['f'], t['r'] = '\b', '\t', '\n', '\f', '\r'
	t['u'] = 'u'
	return t
}()

type cjsonToken struct {
	typ   cjsonTokenType
	index int     // 0-based byte offset, shown 1-based
	str   string  // cjTString value, or the cjTError reason
	num   float64 // cjTNumber value
	b     bool    // cjTBoolean value
}

type cjsonDecoder struct {
	c     *cjsonConfig
	L     *lua.LState
	s     string // input cut at its first NUL, where C sees the end
	pos   int
	depth int
	top   int // Lua stack slots lua-cjson would hold, see cjsonMaxCStack
}

func (c *cjsonConfig) decode(L *lua.LState, s string) (lua.LValue, error) {
	// lua-cjson's check: a JSON text starts with an ASCII byte, so a NUL in
	// the first two bytes means UTF-16 or UTF-32.
	if len(s) >= 2 && (s[0] == 0 || s[1] == 0) {
		return nil, cjsonError("JSON parser does not support UTF-16 or UTF-32")
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	d := cjsonDecoder{c: c, L: L, s: s, top: 1}
	var tok cjsonToken
	d.next(&tok)
	v, err := d.value(&tok)
	if err == nil {
		d.next(&tok)
		if tok.typ != cjTEnd {
			err = cjsonParseError("the end", &tok)
		}
	}
	c.slab = nil
	clear(c.lastKeys[:])
	if err != nil {
		// Drop references held for tables that will never be built.
		clear(c.vals)
		c.vals = c.vals[:0]
		clear(c.keys)
		c.keys = c.keys[:0]
		return nil, err
	}
	return v, nil
}

func cjsonParseError(expected string, tok *cjsonToken) error {
	found := tok.str
	if tok.typ != cjTError {
		found = cjsonTokenName[tok.typ]
	}
	return cjsonError("Expected " + expected + " but found " + found + " at character " + strconv.Itoa(tok.index+1))
}

func (d *cjsonDecoder) tokenError(tok *cjsonToken, reason string) {
	tok.typ = cjTError
	tok.index = d.pos
	tok.str = reason
}

func (d *cjsonDecoder) next(tok *cjsonToken) {
	s := d.s
	for d.pos < len(s) && cjsonCh2Token[s[d.pos]] == cjTWhitespace {
		d.pos++
	}
	tok.index = d.pos
	if d.pos >= len(s) {
		tok.typ = cjTEnd
		return
	}
	ch := s[d.pos]
	tok.typ = cjsonCh2Token[ch]
	switch tok.typ {
	case cjTError:
		d.tokenError(tok, "invalid token")
		return
	case cjTUnknown:
	default:
		d.pos++
		return
	}
	rest := s[d.pos:]
	switch {
	case ch == '"':
		d.stringToken(tok)
	case ch == '-' || ('0' <= ch && ch <= '9'):
		if !d.c.decodeInvalidNumbers && cjsonIsInvalidNumber(rest) {
			d.tokenError(tok, "invalid number")
			return
		}
		d.numberToken(tok)
	case strings.HasPrefix(rest, "true"):
		tok.typ, tok.b = cjTBoolean, true
		d.pos += 4
	case strings.HasPrefix(rest, "false"):
		tok.typ, tok.b = cjTBoolean, false
		d.pos += 5
	case strings.HasPrefix(rest, "null"):
		tok.typ = cjTNull
		d.pos += 4
	case d.c.decodeInvalidNumbers && cjsonIsInvalidNumber(rest):
		d.numberToken(tok)
	default:
		d.tokenError(tok, "invalid token")
	}
}

// cjsonIsInvalidNumber is json_is_invalid_number: numbers cjsonStrtod accepts but JSON
// does not (leading +, hex, leading zeros, inf, nan).
func cjsonIsInvalidNumber(p string) bool {
	if p[0] == '+' {
		return true
	}
	if p[0] == '-' {
		p = p[1:]
	}
	if len(p) == 0 {
		return false
	}
	if p[0] == '0' {
		if len(p) > 1 && ((p[1]|0x20) == 'x' || ('0' <= p[1] && p[1] <= '9')) {
			return true
		}
		return false
	}
	if p[0] <= '9' {
		return false
	}
	return cjsonHasPrefixFold(p, "inf") || cjsonHasPrefixFold(p, "nan")
}

func cjsonHasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func (d *cjsonDecoder) numberToken(tok *cjsonToken) {
	n, f := cjsonStrtod(d.s[d.pos:])
	if n == 0 {
		d.tokenError(tok, "invalid number")
		return
	}
	tok.typ = cjTNumber
	tok.num = f
	d.pos += n
}

func cjsonIsDigit(c byte) bool { return '0' <= c && c <= '9' }

func cjsonIsHexDigit(c byte) bool {
	return cjsonIsDigit(c) || ('a' <= c|0x20 && c|0x20 <= 'f')
}

// cjsonStrtod parses the longest prefix of s that glibc's cjsonStrtod accepts (no
// leading space: callers start at a sign or digit) and returns its length
// (0: none) and value.
func cjsonStrtod(s string) (int, float64) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	sign := 1.0
	if neg {
		sign = -1
	}
	rest := s[i:]
	switch {
	case cjsonHasPrefixFold(rest, "inf"):
		i += 3
		if cjsonHasPrefixFold(s[i:], "inity") {
			i += 5
		}
		return i, math.Inf(int(sign))
	case cjsonHasPrefixFold(rest, "nan"):
		i += 3
		if i < len(s) && s[i] == '(' {
			j := i + 1
			for j < len(s) && (cjsonIsDigit(s[j]) || ('a' <= s[j]|0x20 && s[j]|0x20 <= 'z') || s[j] == '_') {
				j++
			}
			if j < len(s) && s[j] == ')' {
				i = j + 1
			}
		}
		return i, math.NaN()
	case len(rest) > 2 && rest[0] == '0' && rest[1]|0x20 == 'x':
		if n, f, ok := cjsonStrtodHex(rest); ok {
			return i + n, sign * f
		}
	}
	start := i
	digits := 0
	var whole uint64
	for i < len(s) && cjsonIsDigit(s[i]) {
		whole = whole*10 + uint64(s[i]-'0')
		i++
		digits++
	}
	intEnd := i
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && cjsonIsDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0, 0
	}
	if i < len(s) && s[i]|0x20 == 'e' {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && cjsonIsDigit(s[j]) {
			for j < len(s) && cjsonIsDigit(s[j]) {
				j++
			}
			i = j
		}
	}
	if i == intEnd && digits <= 15 {
		// An integer below 2^53 converts exactly: no need for ParseFloat.
		return i, sign * float64(whole)
	}
	f, err := strconv.ParseFloat(s[start:i], 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, 0 // not reached: the scan above only admits valid text
	}
	return i, sign * f
}

// cjsonStrtodHex parses a C hexadecimal float ("0x1.8p3", "0x10", "0x.8"); ok is
// false when no hex digit follows "0x" (cjsonStrtod then reads just the "0").
func cjsonStrtodHex(s string) (int, float64, bool) {
	i := 2
	digits := 0
	for i < len(s) && cjsonIsHexDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && cjsonIsHexDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0, 0, false
	}
	mant := s[:i]
	exp := "p0"
	if i < len(s) && s[i]|0x20 == 'p' {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && cjsonIsDigit(s[j]) {
			for j < len(s) && cjsonIsDigit(s[j]) {
				j++
			}
			exp = s[i:j]
			i = j
		}
	}
	// Go wants the binary exponent that C makes optional; this rare path
	// may allocate.
	f, err := strconv.ParseFloat(mant+exp, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, 0, false
	}
	return i, f, true
}

func (d *cjsonDecoder) stringToken(tok *cjsonToken) {
	s := d.s
	i := d.pos + 1
	start := i
	// Fast path: no escapes, the value is a slice of the input.
	for i < len(s) && s[i] != '"' && s[i] != '\\' {
		i++
	}
	if i < len(s) && s[i] == '"' {
		tok.typ = cjTString
		tok.str = s[start:i]
		d.pos = i + 1
		return
	}
	buf := append(d.c.scratch[:0], s[start:i]...)
	for {
		if i >= len(s) {
			d.pos = i
			d.tokenError(tok, "unexpected end of string")
			d.c.scratch = buf
			return
		}
		ch := s[i]
		if ch == '"' {
			break
		}
		if ch != '\\' {
			buf = append(buf, ch)
			i++
			continue
		}
		var esc byte
		if i+1 < len(s) {
			esc = cjsonEscape2Char[s[i+1]]
		}
		if esc == 'u' {
			var n int
			buf, n = cjsonAppendUnicodeEscape(buf, s[i:])
			if n == 0 {
				d.pos = i
				d.tokenError(tok, "invalid unicode escape code")
				d.c.scratch = buf
				return
			}
			i += n
			continue
		}
		if esc == 0 {
			d.pos = i
			d.tokenError(tok, "invalid escape code")
			d.c.scratch = buf
			return
		}
		buf = append(buf, esc)
		i += 2
	}
	d.c.scratch = buf
	tok.typ = cjTString
	tok.str = string(buf)
	d.pos = i + 1
}

func cjsonDecodeHex4(s string) int {
	if len(s) < 4 {
		return -1
	}
	v := 0
	for i := 0; i < 4; i++ {
		c := s[i]
		var d byte
		switch {
		case cjsonIsDigit(c):
			d = c - '0'
		case 'a' <= c|0x20 && c|0x20 <= 'f':
			d = c | 0x20 - 'a' + 10
		default:
			return -1
		}
		v = v<<4 | int(d)
	}
	return v
}

// cjsonAppendUnicodeEscape decodes the \uXXXX (or surrogate pair) at the start of
// s as UTF-8; it returns the escape's length, 0 if it is invalid.
func cjsonAppendUnicodeEscape(dst []byte, s string) ([]byte, int) {
	cp := cjsonDecodeHex4(s[2:])
	if cp < 0 {
		return dst, 0
	}
	n := 6
	if cp&0xF800 == 0xD800 {
		if cp&0x400 != 0 || len(s) < 8 || s[6] != '\\' || s[7] != 'u' {
			return dst, 0
		}
		lo := cjsonDecodeHex4(s[8:])
		if lo < 0 || lo&0xFC00 != 0xDC00 {
			return dst, 0
		}
		cp = ((cp&0x3FF)<<10 | lo&0x3FF) + 0x10000
		n = 12
	}
	switch {
	case cp <= 0x7F:
		dst = append(dst, byte(cp))
	case cp <= 0x7FF:
		dst = append(dst, byte(0xC0|cp>>6), byte(0x80|cp&0x3F))
	case cp <= 0xFFFF:
		dst = append(dst, byte(0xE0|cp>>12), byte(0x80|(cp>>6)&0x3F), byte(0x80|cp&0x3F))
	default:
		dst = append(dst, byte(0xF0|cp>>18), byte(0x80|(cp>>12)&0x3F), byte(0x80|(cp>>6)&0x3F), byte(0x80|cp&0x3F))
	}
	return dst, n
}

// descend is json_decode_descend: the depth limit, and the C stack limit
// for slots more Lua stack slots.
func (d *cjsonDecoder) descend(slots int) error {
	d.depth++
	if d.depth <= d.c.decodeMaxDepth && d.top+slots <= cjsonMaxCStack {
		return nil
	}
	return cjsonError("Found too many nested data structures (" + strconv.Itoa(d.depth) + ") at character " + strconv.Itoa(d.pos))
}

// cjsonSmallInts holds boxed small integers: converting an LNumber to an
// LValue allocates, and small counts, ids and flags are the common case.
var cjsonSmallInts = func() (t [256]lua.LValue) {
	for i := range t {
		t[i] = lua.LNumber(i)
	}
	return t
}()

func (d *cjsonDecoder) value(tok *cjsonToken) (lua.LValue, error) {
	switch tok.typ {
	case cjTString:
		return lua.LString(tok.str), nil
	case cjTNumber:
		if f := tok.num; f >= 0 && f < float64(len(cjsonSmallInts)) && f == math.Trunc(f) && !math.Signbit(f) {
			return cjsonSmallInts[int(f)], nil
		}
		return lua.LNumber(tok.num), nil
	case cjTBoolean:
		return lua.LBool(tok.b), nil
	case cjTNull:
		return CjsonNull, nil
	case cjTObjBegin:
		return d.object()
	case cjTArrBegin:
		return d.array()
	}
	return nil, cjsonParseError("value", tok)
}

func (d *cjsonDecoder) object() (lua.LValue, error) {
	if err := d.descend(3); err != nil {
		return nil, err
	}
	c := d.c
	vbase, kbase := len(c.vals), len(c.keys)
	var tok cjsonToken
	d.next(&tok)
	if tok.typ != cjTObjEnd {
		d.top += 2 // the table and the pending key
		for {
			if tok.typ != cjTString {
				return nil, cjsonParseError("object key string", &tok)
			}
			key := tok.str
			d.next(&tok)
			if tok.typ != cjTColon {
				return nil, cjsonParseError("colon", &tok)
			}
			d.next(&tok)
			v, err := d.value(&tok)
			if err != nil {
				return nil, err
			}
			c.keys = append(c.keys, key)
			c.vals = append(c.vals, v)
			d.next(&tok)
			if tok.typ == cjTObjEnd {
				break
			}
			if tok.typ != cjTComma {
				return nil, cjsonParseError("comma or object end", &tok)
			}
			d.next(&tok)
		}
		d.top -= 2
	}
	d.depth--
	ks, vs := c.keys[kbase:], c.vals[vbase:]
	t := c.newObject(d.L, ks, vs, d.depth, len(d.s))
	clear(ks)
	clear(vs)
	c.keys, c.vals = c.keys[:kbase], c.vals[:vbase]
	return t, nil
}

func (d *cjsonDecoder) array() (lua.LValue, error) {
	if err := d.descend(2); err != nil {
		return nil, err
	}
	c := d.c
	base := len(c.vals)
	var tok cjsonToken
	d.next(&tok)
	if tok.typ != cjTArrEnd {
		d.top++
		for {
			v, err := d.value(&tok)
			if err != nil {
				return nil, err
			}
			c.vals = append(c.vals, v)
			d.next(&tok)
			if tok.typ == cjTArrEnd {
				break
			}
			if tok.typ != cjTComma {
				return nil, cjsonParseError("comma or array end", &tok)
			}
			d.next(&tok)
		}
		d.top--
	}
	d.depth--
	vs := c.vals[base:]
	t := c.newArray(d.L, vs)
	if c.decodeArrayWithArrayMT {
		t.Metatable = c.arrayMT
	}
	clear(vs)
	c.vals = c.vals[:base]
	return t, nil
}

/* ---------- table building ---------- */

// What gopher-lua's RawSetString costs per key on a new table is the bulk of
// decoding: it boxes the key into an interface twice (once for k2i, once for
// keys) and grows k2i and keys from empty, as neither can be pre-sized
// through its API. When LTable has the layout we expect, the decoder fills
// those fields itself instead: both sized once, one boxed key shared by both
// (and by the same key of sibling objects), and the key lists of one decode
// cut from shared chunks. The result is the table RawSetString would build,
// insertion order included.

// cjsonLTable mirrors lua.LTable (gopher-lua v1.1.2) field for field.
type cjsonLTable struct {
	Metatable lua.LValue

	array   []lua.LValue
	dict    map[lua.LValue]lua.LValue
	strdict map[string]lua.LValue
	keys    []lua.LValue
	k2i     map[lua.LValue]int
}

// cjsonDirectTables says whether lua.LTable is laid out as cjsonLTable; if a
// gopher-lua upgrade changes it, decoding falls back to the public API
// (TestCjsonDirectTables fails so the mirror gets updated).
var cjsonDirectTables = cjsonSameLayout(reflect.TypeFor[lua.LTable](), reflect.TypeFor[cjsonLTable]())

func cjsonSameLayout(a, b reflect.Type) bool {
	if a.Size() != b.Size() || a.NumField() != b.NumField() {
		return false
	}
	for i := range a.NumField() {
		fa, fb := a.Field(i), b.Field(i)
		if fa.Name != fb.Name || fa.Type != fb.Type || fa.Offset != fb.Offset {
			return false
		}
	}
	return true
}

const (
	// Objects nested deeper than this do not share boxed keys with their
	// siblings.
	cjsonKeyReuseDepth = 16

	// Bounds on the chunks the key lists of one decode are cut from: about
	// one slot per 32 input bytes, so that a small document does not pin a
	// large chunk and a large one does not allocate per object.
	cjsonSlabMin = 16
	cjsonSlabMax = 256
)

// keySlots returns room for n keys, with capacity exactly n so that a table
// given more keys later reallocates rather than writing into its
// neighbour's. A retained table keeps its whole chunk alive, but the chunk
// holds only keys, strings that share the input anyway; values (and so other
// tables) are never kept in shared chunks.
func (c *cjsonConfig) keySlots(n, inputLen int) []lua.LValue {
	if n > len(c.slab) {
		size := min(max(inputLen/32, cjsonSlabMin), cjsonSlabMax)
		if n > size/2 {
			// A table this big gets its own allocation; the chunk stays
			// for the small ones.
			return make([]lua.LValue, 0, n)
		}
		c.slab = make([]lua.LValue, size)
	}
	s := c.slab[:0:n]
	c.slab = c.slab[n:]
	return s
}

// newObject builds the table of a decoded object: keys ks in input order, a
// repeated key taking its last value and its first position, as with
// RawSetString.
func (c *cjsonConfig) newObject(L *lua.LState, ks []string, vs []lua.LValue, depth, inputLen int) *lua.LTable {
	t := L.CreateTable(0, len(ks))
	if len(ks) == 0 {
		return t
	}
	if !cjsonDirectTables || c.publicTables {
		for i, k := range ks {
			t.RawSetString(k, vs[i])
		}
		return t
	}
	var prev []lua.LValue
	if depth < cjsonKeyReuseDepth {
		prev = c.lastKeys[depth]
	}
	f := (*cjsonLTable)(unsafe.Pointer(t))
	strdict := f.strdict
	keys := c.keySlots(len(ks), inputLen)
	k2i := make(map[lua.LValue]int, len(ks))
	for i, k := range ks {
		n := len(strdict)
		strdict[k] = vs[i]
		if len(strdict) == n {
			continue // a repeated key
		}
		var lk lua.LValue
		j := len(keys)
		if j < len(prev) && string(prev[j].(lua.LString)) == k {
			lk = prev[j]
		} else {
			lk = lua.LString(k)
		}
		k2i[lk] = j
		keys = append(keys, lk)
	}
	f.keys, f.k2i = keys, k2i
	if depth < cjsonKeyReuseDepth {
		c.lastKeys[depth] = keys
	}
	return t
}

// newArray builds the table of a decoded array (never holding nil).
func (c *cjsonConfig) newArray(L *lua.LState, vs []lua.LValue) *lua.LTable {
	if c.publicTables {
		return newArrayTablePublic(L, vs)
	}
	return newArrayTable(L, vs...)
}
