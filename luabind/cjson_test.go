package luabind

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"
)

// newCjsonTestState is a bare VM with the modules of this file set.
func newCjsonTestState(t testing.TB) *lua.LState {
	L := lua.NewState()
	t.Cleanup(L.Close)
	L.PreloadModule("cjson", CjsonLoader)
	L.PreloadModule("cjson.safe", CjsonSafeLoader)
	L.PreloadModule("bit", BitLoader)
	OpenTableExt(L)
	return L
}

// cjsonEval runs code (a chunk ending in return) and joins its results with
// tabs, formatting numbers as LuaJIT's tostring does.
func cjsonEval(t testing.TB, L *lua.LState, code string) string {
	t.Helper()
	top := L.GetTop()
	require.NoError(t, L.DoString(code), code)
	var out []string
	for i := top + 1; i <= L.GetTop(); i++ {
		if n, ok := L.Get(i).(lua.LNumber); ok {
			out = append(out, string(AppendLuaNumber(nil, float64(n))))
			continue
		}
		out = append(out, L.ToStringMeta(L.Get(i)).String())
	}
	L.SetTop(top)
	return strings.Join(out, "\t")
}

const cjsonPrelude = `local cjson = require "cjson" local safe = require "cjson.safe" `

// TestCjsonOpenRestyFork pins the openresty/lua-cjson features that Debian's
// upstream 2.1.0 lacks, from the fork's documentation.
func TestCjsonOpenRestyFork(t *testing.T) {
	tests := []struct {
		name, code, want string
	}{
		{"empty_array", `return cjson.encode({foo = "bar"}), cjson.encode({some_array = cjson.empty_array})`,
			`{"foo":"bar"}` + "\t" + `{"some_array":[]}`},
		{"empty_array top level", `return cjson.encode(cjson.empty_array), type(cjson.empty_array)`, "[]\tuserdata"},
		{"empty table is object by default", `return cjson.encode({}), cjson.encode({a = {}})`, "{}\t{\"a\":{}}"},
		{"encode_empty_table_as_object off",
			`local r = cjson.encode_empty_table_as_object(false) return r, cjson.encode({}), cjson.encode({a = {}}), cjson.encode({x = 1})`,
			"false\t[]\t{\"a\":[]}\t{\"x\":1}"},
		{"encode_empty_table_as_object on", `return cjson.encode_empty_table_as_object("off"), cjson.encode_empty_table_as_object("on"), cjson.encode({})`,
			"false\ttrue\t{}"},
		{"array_mt", `local t = setmetatable({"hello", "world"}, cjson.array_mt) return cjson.encode(t)`, `["hello","world"]`},
		{"array_mt holes and hash part",
			`local t = {} t[1] = "one" t[2] = "two" t[4] = "three" t.foo = "bar" setmetatable(t, cjson.array_mt) return cjson.encode(t)`,
			`["one","two",null,"three"]`},
		{"array_mt empty", `return cjson.encode(setmetatable({}, cjson.array_mt))`, "[]"},
		{"array_mt ignores sparse check", `local t = {} t[20] = 1 return cjson.encode(setmetatable(t, cjson.array_mt)):sub(1, 10)`, "[null,null"},
		{"empty_array_mt empty", `return cjson.encode({some_array = setmetatable({}, cjson.empty_array_mt)})`, `{"some_array":[]}`},
		{"empty_array_mt non-empty array", `return cjson.encode(setmetatable({1, 2}, cjson.empty_array_mt))`, "[1,2]"},
		{"empty_array_mt with keys stays object", `return cjson.encode(setmetatable({hello = "world"}, cjson.empty_array_mt))`, `{"hello":"world"}`},
		{"metatables shared per VM",
			`local c2 = cjson.new() return c2.array_mt == cjson.array_mt, safe.empty_array_mt == cjson.empty_array_mt, cjson.array_mt ~= cjson.empty_array_mt`,
			"true\ttrue\ttrue"},
		{"decode_array_with_array_mt default off",
			`local t = cjson.decode('{"my_array":[]}') return cjson.encode(t), getmetatable(t.my_array) == nil`,
			"{\"my_array\":{}}\ttrue"},
		{"decode_array_with_array_mt on",
			`local r = cjson.decode_array_with_array_mt(true) local t = cjson.decode('{"my_array":[],"o":{}}')
			 return r, cjson.encode(t.my_array), cjson.encode(t.o), getmetatable(t.my_array) == cjson.array_mt, getmetatable(t.o) == nil`,
			"true\t[]\t{}\ttrue\ttrue"},
		{"encode_escape_forward_slash default", `return cjson.encode("a/b")`, `"a\/b"`},
		{"encode_escape_forward_slash off",
			`local r = cjson.encode_escape_forward_slash(false) return r, cjson.encode("a/b</x>"), cjson.encode({["/"] = "/"})`,
			"false\t\"a/b</x>\"\t{\"/\":\"/\"}"},
		{"encode_escape_forward_slash back on", `cjson.encode_escape_forward_slash(false) cjson.encode_escape_forward_slash(true) return cjson.encode("/")`, `"\/"`},
		{"precision 16", `return cjson.encode_number_precision(16), cjson.encode(0.1 + 0.2), cjson.encode(1/3)`,
			"16\t0.3\t0.3333333333333333"},
		{"precision 15", `cjson.encode_number_precision(15) return cjson.encode(2^53 + 1), cjson.encode(123456789012345)`,
			"9.00719925474099e+15\t123456789012345"},
		{"precision 17 rejected", `return pcall(cjson.encode_number_precision, 17)`,
			"false\tbad argument #1 to 'encode_number_precision' (expected integer between 1 and 16)"},
		{"precision 0 rejected", `return pcall(cjson.encode_number_precision, 0)`,
			"false\tbad argument #1 to 'encode_number_precision' (expected integer between 1 and 16)"},
		{"version", `return cjson._VERSION, cjson._NAME, safe._NAME`, cjsonVersion + "\tcjson\tcjson"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			L := newCjsonTestState(t)
			assert.Equal(t, tt.want, cjsonEval(t, L, cjsonPrelude+tt.code))
		})
	}
}

// TestCjsonKeyOrder pins our deterministic object order: the array part,
// then the other keys in insertion order.
func TestCjsonKeyOrder(t *testing.T) {
	tests := []struct {
		name, code, want string
	}{
		{"insertion order", `local t = {} t.z = 1 t.a = 2 t.m = 3 return cjson.encode(t)`, `{"z":1,"a":2,"m":3}`},
		{"constructor order", `return cjson.encode({header = {opaque = 0, status_code = 0, status = "No error", type = 0}, value = "7"})`,
			`{"header":{"opaque":0,"status_code":0,"status":"No error","type":0},"value":"7"}`},
		{"array part first", `local t = {} t.k = "v" t[1] = "a" t[2] = "b" return cjson.encode(t)`, `{"1":"a","2":"b","k":"v"}`},
		{"deleted key skipped", `local t = {a = 1, b = 2, c = 3} t.b = nil return cjson.encode(t)`, `{"a":1,"c":3}`},
		{"decode keeps input order", `return cjson.encode(cjson.decode('{"b":1,"a":2,"c":{"y":1,"x":2}}'))`, `{"b":1,"a":2,"c":{"y":1,"x":2}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			L := newCjsonTestState(t)
			for i := 0; i < 20; i++ { // Go map order must not leak through
				require.Equal(t, tt.want, cjsonEval(t, L, cjsonPrelude+tt.code))
			}
		})
	}
}

func TestCjsonNullIsSharedAndImmutable(t *testing.T) {
	L1, L2 := newCjsonTestState(t), newCjsonTestState(t)
	for _, L := range []*lua.LState{L1, L2} {
		require.NoError(t, L.DoString(`cjson = require "cjson" safe = require "cjson.safe"`))
		assert.Equal(t, CjsonNull, L.GetField(L.GetGlobal("cjson"), "null"))
		assert.Equal(t, CjsonNull, L.GetField(L.GetGlobal("safe"), "null"))
		assert.Equal(t, "userdata\tuserdata: NULL\tnil\ttrue\ttrue",
			cjsonEval(t, L, `return type(cjson.null), tostring(cjson.null), getmetatable(cjson.null),
				cjson.decode("null") == cjson.null, cjson.decode("[null]")[1] == safe.null`))
	}
	// ngx.null is this very value, so user code may compare the two.
	L1.SetGlobal("ngx_null", CjsonNull)
	assert.Equal(t, "true\tnull", cjsonEval(t, L1, `return ngx_null == cjson.null, cjson.encode(ngx_null)`))
}

func TestCjsonSafe(t *testing.T) {
	tests := []struct {
		name, code, want string
	}{
		{"encode error", `return safe.encode({f = print})`, "nil\tCannot serialise function: type not supported"},
		{"decode error", `return safe.decode("[1,")`, "nil\tExpected value but found T_END at character 4"},
		{"decode type error", `return safe.decode(true)`, "nil\tbad argument #1 to 'decode' (string expected, got boolean)"},
		{"ok", `return safe.encode({1}), safe.decode("[2]")[1]`, "[1]\t2"},
		{"arity still raises", `return pcall(safe.encode)`, "false\tbad argument #1 to 'encode' (expected 1 argument)"},
		{"new is safe", `return safe.new().decode("x")`, "nil\tExpected value but found invalid token at character 1"},
		{"plain raises", `return pcall(cjson.decode, "x")`, "false\tExpected value but found invalid token at character 1"},
		{"plain error has no position", `local ok, err = pcall(cjson.encode, print) return err`, "Cannot serialise function: type not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			L := newCjsonTestState(t)
			assert.Equal(t, tt.want, cjsonEval(t, L, cjsonPrelude+tt.code))
		})
	}
}

func TestCjsonInstancesAreIndependent(t *testing.T) {
	L := newCjsonTestState(t)
	got := cjsonEval(t, L, cjsonPrelude+`
		local a, b = cjson.new(), cjson.new()
		a.encode_sparse_array(true)
		b.encode_max_depth(1)
		local t = {} t[50] = 1
		local _, e1 = pcall(b.encode, {{}})
		local _, e2 = pcall(cjson.encode, t)
		return a.encode(t), e1, e2, cjson.encode({{}})`)
	assert.Equal(t, "{\"50\":1}\tCannot serialise, excessive nesting (2)\tCannot serialise table: excessively sparse array\t[{}]", got)
}

func TestCjsonEncodeGoValues(t *testing.T) {
	L := newCjsonTestState(t)
	c := newCjsonConfig(L)
	tbl := L.CreateTable(0, 0)
	tbl.RawSetString("s", lua.LString("x\"y"))
	tbl.RawSetString("n", lua.LNumber(1.5))
	tbl.RawSetString("null", CjsonNull)
	tests := []struct {
		name string
		v    lua.LValue
		want string
		err  string
	}{
		{"nil", lua.LNil, "null", ""},
		{"bool", lua.LTrue, "true", ""},
		{"int", lua.LNumber(42), "42", ""},
		{"neg zero", lua.LNumber(math.Copysign(0, -1)), "-0", ""},
		{"float", lua.LNumber(0.1), "0.1", ""},
		{"big int", lua.LNumber(1e15), "1e+15", ""},
		{"max exact", lua.LNumber(99999999999999), "99999999999999", ""},
		{"string", lua.LString("a\x00b"), `"a\u0000b"`, ""},
		{"table", tbl, `{"s":"x\"y","n":1.5,"null":null}`, ""},
		{"userdata", L.NewUserData(), "", "Cannot serialise userdata: type not supported"},
		{"channel", lua.LChannel(make(chan lua.LValue)), "", "Cannot serialise channel: type not supported"},
		{"inf", lua.LNumber(math.Inf(1)), "", "Cannot serialise number: must not be NaN or Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.encode(nil, tt.v)
			if tt.err != "" {
				require.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestCjsonNumberFormatG(t *testing.T) {
	// Expected strings are C's printf("%.Ng").
	tests := []struct {
		f    float64
		prec int
		want string
	}{
		{0, 14, "0"}, {math.Copysign(0, -1), 14, "-0"}, {1, 14, "1"}, {-1, 14, "-1"},
		{0.1, 14, "0.1"}, {1.0 / 3, 14, "0.33333333333333"}, {100, 14, "100"},
		{1e14, 14, "1e+14"}, {99999999999999, 14, "99999999999999"}, {123456789012345, 14, "1.2345678901234e+14"},
		{1e-4, 14, "0.0001"}, {1e-5, 14, "1e-05"}, {1.5e300, 14, "1.5e+300"}, {5e-324, 14, "4.9406564584125e-324"},
		{2.5, 1, "2"}, {3.5, 1, "4"}, {123456, 3, "1.23e+05"}, {0.5, 16, "0.5"}, {1e16, 16, "1e+16"},
		{9999999999999998, 16, "9999999999999998"}, {math.Inf(1), 14, "inf"}, {math.Inf(-1), 14, "-inf"},
		{math.NaN(), 14, "nan"}, {-math.NaN(), 14, "nan"}, {2147483648, 14, "2147483648"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%d", tt.f, tt.prec), func(t *testing.T) {
			assert.Equal(t, tt.want, string(cjsonAppendNumberG(nil, tt.f, tt.prec)))
		})
	}
	assert.Equal(t, "x1e+15", string(AppendLuaNumber([]byte("x"), 1e15)))
}

func TestCjsonStrtod(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want float64
	}{
		{"1", 1, 1}, {"-1.5e3x", 6, -1500}, {"1e", 1, 1}, {"1e+", 1, 1}, {"1.", 2, 1}, {"-.5", 3, -0.5},
		{"0x10", 4, 16}, {"0X1fz", 4, 31}, {"0x", 1, 0}, {"0x.8p1", 6, 1}, {"0x1p", 3, 1}, {"0x1p-2", 6, 0.25},
		{"inf", 3, math.Inf(1)}, {"-Infinity", 9, math.Inf(-1)}, {"infinit", 3, math.Inf(1)},
		{"1e400", 5, math.Inf(1)}, {"1e-400", 6, 0}, {"+", 0, 0}, {"-", 0, 0}, {".", 0, 0}, {"-x", 0, 0},
		{"00012", 5, 12},
		// Integers of up to 15 digits skip ParseFloat; longer ones must not.
		{"999999999999999", 15, 999999999999999}, {"-123456789012345,", 16, -123456789012345},
		{"9007199254740993", 16, 9007199254740992}, {"12345678901234567890", 20, 12345678901234567890},
		{"000000000000000000001", 21, 1}, {"12e2", 4, 1200}, {"12E", 2, 12}, {"7.0", 3, 7},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, f := cjsonStrtod(tt.in)
			assert.Equal(t, tt.n, n)
			if tt.n > 0 {
				assert.Equal(t, tt.want, f)
			}
		})
	}
	n, f := cjsonStrtod("-0")
	assert.Equal(t, 2, n)
	assert.True(t, f == 0 && math.Signbit(f), "-0 keeps its sign")
	for _, s := range []string{"nan", "NaN(abc_1)", "-nan"} {
		n, f := cjsonStrtod(s)
		assert.Equal(t, len(s), n, s)
		assert.True(t, math.IsNaN(f), s)
	}
	n, _ = cjsonStrtod("nan(")
	assert.Equal(t, 3, n)
}

func TestCjsonKeepBuffer(t *testing.T) {
	L := newCjsonTestState(t)
	c := newCjsonConfig(L)
	L.Push(lua.LString("x"))
	require.Equal(t, 1, c.luaEncode(L, false))
	assert.NotNil(t, c.buf, "encode_keep_buffer(true) keeps the buffer")
	big := L.CreateTable(0, 0)
	big.RawSetInt(1, lua.LString(strings.Repeat("a", cjsonKeepBufferMax+1)))
	L.SetTop(0)
	L.Push(big)
	c.luaEncode(L, false)
	assert.Nil(t, c.buf, "an oversized buffer is not kept")
	c.keepBuffer = false
	L.SetTop(0)
	L.Push(lua.LString("y"))
	c.luaEncode(L, false)
	assert.Nil(t, c.buf)
	assert.Equal(t, `"y"`, L.Get(-1).String())
}

// TestCjsonRoundTrip decodes, re-encodes and decodes again documents whose
// objects have single keys, so the text must survive unchanged.
func TestCjsonRoundTrip(t *testing.T) {
	docs := []string{
		`[1,2,3]`, `{"a":[true,false,null,"x",1.5,-2]}`, `"\u00e9\u20ac"`, `[[],[[]],[{"k":{"k":"v"}}]]`,
		`"\/\"\\\b\f\n\r\t\u0001\u007f"`, `[1e+100,1e-100,0.1,123456789]`,
	}
	L := newCjsonTestState(t)
	for _, d := range docs {
		L.SetGlobal("doc", lua.LString(d))
		got := cjsonEval(t, L, cjsonPrelude+`cjson.decode_array_with_array_mt(true) return cjson.encode(cjson.decode(doc))`)
		want := d
		if d == `"\u00e9\u20ac"` {
			want = "\"\u00e9\u20ac\""
		}
		assert.Equal(t, want, got, d)
	}
}

func TestCjsonDecodeAllocations(t *testing.T) {
	L := newCjsonTestState(t)
	c := newCjsonConfig(L)
	// Scalars decode without allocating beyond the boxed result.
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = c.decode(L, `  123.5  `)
	})
	assert.LessOrEqual(t, allocs, 1.0)
	allocs = testing.AllocsPerRun(100, func() {
		_, _ = c.decode(L, `200`)
	})
	assert.Zero(t, allocs, "small integers are preboxed")
	var buf []byte
	v := lua.LString("plain ascii string with no escapes")
	allocs = testing.AllocsPerRun(100, func() {
		buf, _ = c.encode(buf[:0], v)
	})
	assert.Zero(t, allocs, "encoding into a reused buffer")
}

// TestCjsonDirectTables fails when a gopher-lua upgrade changes LTable's
// layout: decoding then still works, through the slower public API, until
// cjsonLTable is brought in line.
func TestCjsonDirectTables(t *testing.T) {
	require.True(t, cjsonDirectTables, "lua.LTable no longer matches cjsonLTable")
	assert.False(t, cjsonSameLayout(reflect.TypeFor[lua.LTable](), reflect.TypeFor[struct{ Metatable lua.LValue }]()))
}

// cjsonTablesDump decodes doc, dumps every table in pairs order, then adds,
// deletes and re-adds keys and array elements in every table and dumps again:
// whatever built the tables, Lua must not be able to tell.
const cjsonTablesDump = `
local function dump(v, out)
  if type(v) ~= "table" then out[#out+1] = type(v) .. ":" .. tostring(v) return end
  out[#out+1] = "{"
  for k, x in pairs(v) do out[#out+1] = tostring(k) .. "=" dump(x, out) end
  out[#out+1] = "#" .. #v .. "}"
end
local function mutate(v)
  if type(v) ~= "table" then return end
  for _, x in pairs(v) do mutate(x) end
  local first = next(v)
  v.zz1 = 1
  if first ~= nil then v[first] = nil end
  v.zz2 = 2
  if first ~= nil then v[first] = "back" end
  v[#v+1] = "app"
  table.insert(v, 1, "ins")
  v.zz1 = nil
end
-- gopher-lua's table.concat overflows its registry on long lists.
local function join(t)
  local parts = {}
  for i = 1, #t, 500 do parts[#parts+1] = table.concat(t, " ", i, math.min(i + 499, #t)) end
  return table.concat(parts, " ")
end
local v = decode(doc)
local a, b = {}, {}
dump(v, a)
local enc = encode(v)
mutate(v)
dump(v, b)
local m = {10, 20, nil, 40, x = 1, [2.5] = "f", [-1] = "neg", [2^40] = "big", y = {}}
m.x = nil
m.z = 3
m[100] = "far"
local n = {1, 2, 3}
n.k = "v"
n.k = nil
n[2] = nil
return join(a), enc, join(b), encode(v), encode(m), encode(n), encode({[1.5] = 1}), encode({nil, nil, 3, k = 1})
`

func TestCjsonDirectTablesMatchPublicAPI(t *testing.T) {
	var many, deep strings.Builder
	many.WriteString(`{`)
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&many, `"k%d":[{"a":%d,"b":{"c":[%d]}},{"b":1,"a":2}],`, i, i, i)
	}
	many.WriteString(`"last":{}}`)
	for i := 0; i < 24; i++ {
		fmt.Fprintf(&deep, `{"x":[{"k":%d},{"k":%d,"j":1}],"y":`, i, i)
	}
	deep.WriteString(`0` + strings.Repeat(`}`, 24))
	docs := map[string]string{
		"bench":             benchDoc,
		"repeated keys":     `{"a":1,"a":2,"b":3,"a":4,"b":{"b":1,"b":2}}`,
		"records":           `[{"a":1,"b":2},{"a":0,"b":0},{"a":3,"c":4},{"x":1},{"a":5,"b":6,"c":7},{"a":8}]`,
		"escaped keys":      `{"k\"e\u00e9y":1,"":2,"k\"e\u00e9y":3,"\u0000":4}`,
		"empty":             `[{},[],{"a":{}},[[]]]`,
		"big and many":      many.String(),
		"deeper than reuse": deep.String(),
		"scalar":            `"s"`,
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			L := newCjsonTestState(t)
			require.NoError(t, L.DoString(`cjson = require "cjson"`))
			direct, public := newCjsonConfig(L), newCjsonConfig(L)
			public.publicTables = true
			// Integer keys are formatted with the precision too.
			direct.precision, public.precision = 1, 1
			run := func(c *cjsonConfig) string {
				L.SetGlobal("decode", L.NewFunction(func(L *lua.LState) int { return c.luaDecode(L, false) }))
				L.SetGlobal("encode", L.NewFunction(func(L *lua.LState) int { return c.luaEncode(L, false) }))
				L.SetGlobal("doc", lua.LString(doc))
				return cjsonEval(t, L, cjsonTablesDump)
			}
			want := run(public)
			for i := 0; i < 3; i++ { // reused boxed keys must not leak between calls
				require.Equal(t, want, run(direct))
			}
		})
	}
}

func TestCjsonDecodeTableAllocations(t *testing.T) {
	L := newCjsonTestState(t)
	direct, public := newCjsonConfig(L), newCjsonConfig(L)
	public.publicTables = true
	count := func(c *cjsonConfig) float64 {
		return testing.AllocsPerRun(50, func() {
			_, _ = c.decode(L, benchDoc)
		})
	}
	d, p := count(direct), count(public)
	t.Logf("1 KB document: %v allocations, %v through the public API", d, p)
	assert.Less(t, d, 0.6*p, "direct table building should save at least 40%% of the allocations")
}

var benchDoc = func() string {
	var b bytes.Buffer
	b.WriteString(`{"id":12345,"name":"luaserve benchmark object","active":true,"score":98.625,"tags":["fast","json","lua","openresty"],`)
	b.WriteString(`"owner":{"login":"someone","id":987654,"url":"https://example.com/users/someone","site_admin":false},`)
	b.WriteString(`"items":[`)
	for i := 0; i < 8; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%04d","qty":%d,"price":%d.99,"note":"line \"%d\"\n"}`, i, i+1, 10*i, i)
	}
	b.WriteString(`],"description":"A typical API payload of about one kilobyte with nested objects, arrays, numbers and escapes: \u00e9\u20ac.","empty":{},"nothing":null}`)
	return b.String()
}()

func BenchmarkCjsonDecode1K(b *testing.B) {
	L := newCjsonTestState(b)
	c := newCjsonConfig(L)
	b.SetBytes(int64(len(benchDoc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.decode(L, benchDoc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCjsonEncode1K(b *testing.B) {
	L := newCjsonTestState(b)
	c := newCjsonConfig(L)
	v, err := c.decode(L, benchDoc)
	require.NoError(b, err)
	out, err := c.encode(nil, v)
	require.NoError(b, err)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if c.buf, err = c.encode(c.buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCjsonEncodeLua measures cjson.encode as Lua calls it, including
// the result string.
func BenchmarkCjsonEncodeLua(b *testing.B) {
	L := newCjsonTestState(b)
	require.NoError(b, L.DoString(`cjson = require "cjson"`))
	L.SetGlobal("doc", lua.LString(benchDoc))
	require.NoError(b, L.DoString(`obj = cjson.decode(doc) enc = cjson.encode`))
	enc, obj := L.GetGlobal("enc"), L.GetGlobal("obj")
	b.ReportAllocs()
	for b.Loop() {
		if err := L.CallByParam(lua.P{Fn: enc, NRet: 1, Protect: true}, obj); err != nil {
			b.Fatal(err)
		}
		L.Pop(1)
	}
}

func FuzzCjsonDecode(f *testing.F) {
	for _, s := range []string{benchDoc, `[1,2]`, `{"a":"\ud83d\ude00"}`, `-0x1.8p1`, `nan(1)`, "\"a\x00\"", `[[[[`, `{"a":1,}`} {
		f.Add(s)
	}
	L := newCjsonTestState(f)
	c, public := newCjsonConfig(L), newCjsonConfig(L)
	c.encodeInvalidNumbers = cjsonInvalidNumbersOn
	public.encodeInvalidNumbers = cjsonInvalidNumbersOn
	public.publicTables = true
	f.Fuzz(func(t *testing.T, s string) {
		v, err := c.decode(L, s)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "Expected ") ||
				strings.HasPrefix(err.Error(), "Found too many nested") ||
				err.Error() == "JSON parser does not support UTF-16 or UTF-32", err.Error())
			return
		}
		require.Empty(t, c.vals, "value stack must be empty after a decode")
		require.Empty(t, c.keys, "key stack must be empty after a decode")
		// What we decode we can encode, and that text decodes to the same text.
		out, err := c.encode(nil, v)
		if err != nil {
			require.Contains(t, err.Error(), "excessively sparse array") // never: decoded arrays are dense
			return
		}
		v2, err := c.decode(L, string(out))
		require.NoError(t, err, "re-decoding %q", out)
		out2, err := c.encode(nil, v2)
		require.NoError(t, err)
		require.Equal(t, string(out), string(out2))
		// Tables built directly encode as those built through the API.
		v3, err := public.decode(L, s)
		require.NoError(t, err)
		out3, err := public.encode(nil, v3)
		require.NoError(t, err)
		require.Equal(t, string(out), string(out3))
	})
}

// TestCjsonConcurrentVMs runs one VM per goroutine, as the engine's pool
// does; run with -race it checks that the shared values (cjson.null,
// empty_array, preboxed numbers, tables of the codec) are only read.
func TestCjsonConcurrentVMs(t *testing.T) {
	const workers, rounds = 4, 200
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			L := lua.NewState()
			defer L.Close()
			L.PreloadModule("cjson", CjsonLoader)
			L.PreloadModule("bit", BitLoader)
			OpenTableExt(L)
			L.SetGlobal("doc", lua.LString(benchDoc))
			errs <- L.DoString(fmt.Sprintf(`
				local cjson, bit = require "cjson", require "bit"
				for i = 1, %d do
					local t = cjson.decode(doc)
					t.extra = {cjson.null, cjson.empty_array, i, bit.band(i, 7)}
					local s = cjson.encode(t)
					assert(cjson.decode(s).extra[1] == cjson.null)
					table.clear(t)
				end`, rounds))
		}()
	}
	for w := 0; w < workers; w++ {
		require.NoError(t, <-errs)
	}
}
