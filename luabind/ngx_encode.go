package luabind

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"hash/crc32"

	lua "github.com/yuin/gopher-lua"
)

// Escape kinds of nginx's ngx_escape_uri, as accepted by ngx.escape_uri's
// second argument (lua-nginx-module's ngx_http_lua_escape_uri).
const (
	EscapeTypeURI          = 0
	EscapeTypeArgs         = 1
	EscapeTypeURIComponent = 2
	EscapeTypeHTML         = 3
	EscapeTypeRefresh      = 4
	EscapeTypeMemcached    = 5
	EscapeTypeMailAuth     = 6
)

// ngxEscapeTables are lua-nginx-module's bitmaps (ngx_http_lua_util.c): bit b of
// word c>>5 set means byte c is escaped. uri_component is lua-nginx-module's
// RFC 3986 variant (everything but ALPHA DIGIT - . _ ~), not nginx core's.
var ngxEscapeTables = [7]*[8]uint32{
	{0xffffffff, 0x80000029, 0x00000000, 0x80000000, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
	{0xffffffff, 0x80000829, 0x00000000, 0x80000000, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
	{0xffffffff, 0xfc00987d, 0x78000001, 0xb8000001, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
	{0xffffffff, 0x000000ad, 0x00000000, 0x80000000, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
	{0xffffffff, 0x00000085, 0x00000000, 0x80000000, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
	{0xffffffff, 0x00000021, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000},
	{0xffffffff, 0x00000021, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000},
}

const ngxUpperHex = "0123456789ABCDEF"

// EscapeURI appends s to dst with the bytes that escape kind (EscapeTypeURI …
// EscapeTypeMailAuth) marks replaced by %XX, uppercase hex, exactly as
// ngx.escape_uri(s, kind) does. Kinds out of range are treated as
// EscapeTypeURIComponent, the Lua default.
func EscapeURI(dst []byte, s []byte, kind int) []byte {
	if kind < 0 || kind >= len(ngxEscapeTables) {
		kind = EscapeTypeURIComponent
	}
	tbl := ngxEscapeTables[kind]
	for _, c := range s {
		if tbl[c>>5]&(1<<(c&0x1f)) != 0 {
			dst = append(dst, '%', ngxUpperHex[c>>4], ngxUpperHex[c&0xf])
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

// ngxEscapedLen reports the length of s once escaped, so callers can return s
// unchanged (no copy) when nothing needs escaping, as resty.core does.
func ngxEscapedLen(s string, kind int) int {
	tbl := ngxEscapeTables[kind]
	n := len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tbl[c>>5]&(1<<(c&0x1f)) != 0 {
			n += 2
		}
	}
	return n
}

func ngxUnhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return c | 0x20 - 'a' + 10, true
	}
	return 0, false
}

// UnescapeURI appends s to dst with %XX decoded and '+' turned into a space,
// as ngx.unescape_uri does. A '%' not followed by two hex digits is copied
// as is and scanning resumes right after it, so "%%41" gives "%A" and a
// trailing "%4" stays (checked against OpenResty).
func UnescapeURI(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 < len(s) {
				hi, ok1 := ngxUnhex(s[i+1])
				lo, ok2 := ngxUnhex(s[i+2])
				if ok1 && ok2 {
					dst = append(dst, hi<<4|lo)
					i += 2
					continue
				}
			}
			dst = append(dst, '%')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// ngxCoerceString mirrors resty.core's argument handling for the string
// helpers: nil and false become "", anything else goes through tostring.
func ngxCoerceString(L *lua.LState, n int) string { return coerceString(L, L.Get(n)) }

// coerceString is ngxCoerceString for a value.
func coerceString(L *lua.LState, v lua.LValue) string {
	switch lv := v.(type) {
	case lua.LString:
		return string(lv)
	case *lua.LNilType:
		return ""
	case lua.LBool:
		if !bool(lv) {
			return ""
		}
		return "true"
	case lua.LNumber:
		return ngxFormatNumber(float64(lv))
	}
	return L.ToStringMeta(v).String()
}

// ngxFormatNumber renders a number the way LuaJIT's tostring does.
func ngxFormatNumber(f float64) string { return string(AppendLuaNumber(nil, f)) }

// registerNgxEncoding installs ngx.escape_uri, unescape_uri, encode_args,
// decode_args, encode_base64, decode_base64, md5, md5_bin, sha1_bin,
// hmac_sha1, crc32_short, crc32_long and quote_sql_str on ngx. They keep no
// per-VM state.
func registerNgxEncoding(L *lua.LState, ngx *lua.LTable) {
	fns := map[string]lua.LGFunction{
		"escape_uri":    ngxEscapeURI,
		"unescape_uri":  ngxUnescapeURI,
		"encode_args":   ngxEncodeArgs,
		"decode_args":   ngxDecodeArgs,
		"encode_base64": ngxEncodeBase64,
		"decode_base64": ngxDecodeBase64,
		"md5":           ngxMD5,
		"md5_bin":       ngxMD5Bin,
		"sha1_bin":      ngxSHA1Bin,
		"hmac_sha1":     ngxHMACSHA1,
		"crc32_short":   ngxCRC32,
		"crc32_long":    ngxCRC32,
		"quote_sql_str": ngxQuoteSQLStr,
	}
	for name, fn := range fns {
		ngx.RawSetString(name, L.NewFunction(fn))
	}
}

func ngxEscapeURI(L *lua.LState) int {
	s := ngxCoerceString(L, 1)
	kind := EscapeTypeURIComponent
	if v := L.Get(2); v != lua.LNil {
		n, ok := v.(lua.LNumber)
		if !ok {
			L.RaiseError(`"type" is not a number`)
		}
		if n < 0 || n > EscapeTypeMailAuth {
			L.RaiseError(`"type" %s out of range`, ngxFormatNumber(float64(n)))
		}
		kind = int(n)
	}
	n := ngxEscapedLen(s, kind)
	if n == len(s) {
		L.Push(lua.LString(s))
		return 1
	}
	L.Push(lua.LString(EscapeURI(make([]byte, 0, n), []byte(s), kind)))
	return 1
}

func ngxUnescapeURI(L *lua.LState) int {
	s := ngxCoerceString(L, 1)
	L.Push(lua.LString(UnescapeURI(make([]byte, 0, len(s)), []byte(s))))
	return 1
}

// appendArgValue appends a query-arg key or value the way
// ngx_http_lua_process_args_option does: strings and numbers, escaped as URI
// components.
func appendArgScalar(dst []byte, v lua.LValue) []byte {
	switch lv := v.(type) {
	case lua.LString:
		return EscapeURI(dst, []byte(lv), EscapeTypeURIComponent)
	case lua.LNumber:
		return append(dst, ngxFormatNumber(float64(lv))...)
	}
	return dst
}

func ngxEncodeArgs(L *lua.LState) int {
	tbl := L.CheckTable(1)
	buf := make([]byte, 0, 64)
	sep := func() {
		if len(buf) > 0 {
			buf = append(buf, '&')
		}
	}
	// Emit one pair; returns false for a value type OpenResty rejects.
	pair := func(key, val lua.LValue) bool {
		switch v := val.(type) {
		case lua.LString, lua.LNumber:
			sep()
			buf = appendArgScalar(buf, key)
			buf = append(buf, '=')
			buf = appendArgScalar(buf, v)
		case lua.LBool:
			if v {
				sep()
				buf = appendArgScalar(buf, key)
			}
		default:
			return false
		}
		return true
	}
	var bad lua.LValue
	var badKey bool
	tbl.ForEach(func(k, v lua.LValue) {
		if bad != nil {
			return
		}
		if _, ok := k.(lua.LString); !ok {
			bad, badKey = k, true
			return
		}
		if t, ok := v.(*lua.LTable); ok {
			n := t.Len()
			for i := 1; i <= n; i++ {
				if !pair(k, t.RawGetInt(i)) {
					bad = t.RawGetInt(i)
					return
				}
			}
			return
		}
		if !pair(k, v) {
			bad = v
		}
	})
	if bad != nil {
		if badKey {
			L.RaiseError(`attempt to use a non-string key in the "args" option table`)
		}
		L.RaiseError("attempt to use %s as query arg value", bad.Type().String())
	}
	L.Push(lua.LString(buf))
	return 1
}

// DefaultMaxArgs is lua-nginx-module's NGX_HTTP_LUA_MAX_ARGS.
const DefaultMaxArgs = 100

func ngxDecodeArgs(L *lua.LState) int {
	n := L.GetTop()
	if n != 1 && n != 2 {
		L.RaiseError("expecting 1 or 2 arguments but seen %d", n)
	}
	s := L.CheckString(1)
	max := DefaultMaxArgs
	if n == 2 {
		max = L.CheckInt(2)
	}
	tbl, truncated := ngxParseArgs(L, s, max)
	L.Push(tbl)
	if truncated {
		L.Push(lua.LString("truncated"))
		return 2
	}
	return 1
}

// ngxParseArgs is ngx_http_lua_parse_args: pairs split on '&', key and value on
// the first '=', both unescaped; a bare key is true, empty keys are dropped,
// repeated keys collect into an array. max > 0 bounds the pairs read; hitting
// it reports truncated.
func ngxParseArgs(L *lua.LState, s string, max int) (*lua.LTable, bool) {
	tbl := L.CreateTable(0, 4)
	var scratch []byte
	count := 0
	set := func(key string, val lua.LValue) {
		if key == "" {
			return
		}
		k := lua.LString(key)
		switch old := tbl.RawGetH(k).(type) {
		case *lua.LNilType:
			tbl.RawSetH(k, val)
		case *lua.LTable:
			old.Append(val)
		default:
			arr := L.CreateTable(4, 0)
			arr.Append(old)
			arr.Append(val)
			tbl.RawSetH(k, arr)
		}
	}
	unesc := func(part string) string {
		scratch = UnescapeURI(scratch[:0], []byte(part))
		return string(scratch)
	}
	start := 0
	for start <= len(s) {
		end := start
		for end < len(s) && s[end] != '&' {
			end++
		}
		seg := s[start:end]
		last := end == len(s)
		if last && seg == "" {
			break
		}
		eq := -1
		for i := 0; i < len(seg); i++ {
			if seg[i] == '=' {
				eq = i
				break
			}
		}
		if eq >= 0 {
			set(unesc(seg[:eq]), lua.LString(unesc(seg[eq+1:])))
		} else {
			set(unesc(seg), lua.LTrue)
		}
		if last {
			break
		}
		count++
		if max > 0 && count == max {
			return tbl, true
		}
		start = end + 1
	}
	return tbl, false
}

func ngxEncodeBase64(L *lua.LState) int {
	s := ngxCoerceString(L, 1)
	enc := base64.StdEncoding
	switch v := L.Get(2).(type) {
	case *lua.LNilType:
	case lua.LBool:
		if v {
			enc = base64.RawStdEncoding
		}
	default:
		L.RaiseError("bad no_padding: boolean expected, got %s", v.Type().String())
	}
	L.Push(lua.LString(enc.EncodeToString([]byte(s))))
	return 1
}

// ngxBase64Val maps the standard alphabet to 6-bit values; 0xff marks bytes
// ngx_decode_base64 rejects.
var ngxBase64Val = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	return t
}()

// ngxDecodeBase64Bytes is ngx_decode_base64: input stops at the first '=', padding is
// optional, leftover bits are ignored, a lone trailing sextet is an error.
func ngxDecodeBase64Bytes(dst []byte, s string) ([]byte, bool) {
	n := 0
	for n < len(s) && s[n] != '=' {
		if ngxBase64Val[s[n]] == 0xff {
			return dst, false
		}
		n++
	}
	if n%4 == 1 {
		return dst, false
	}
	p := s[:n]
	for len(p) > 3 {
		a, b, c, d := ngxBase64Val[p[0]], ngxBase64Val[p[1]], ngxBase64Val[p[2]], ngxBase64Val[p[3]]
		dst = append(dst, a<<2|b>>4, b<<4|c>>2, c<<6|d)
		p = p[4:]
	}
	if len(p) > 1 {
		dst = append(dst, ngxBase64Val[p[0]]<<2|ngxBase64Val[p[1]]>>4)
	}
	if len(p) > 2 {
		dst = append(dst, ngxBase64Val[p[1]]<<4|ngxBase64Val[p[2]]>>2)
	}
	return dst, true
}

func ngxDecodeBase64(L *lua.LState) int {
	s, ok := L.Get(1).(lua.LString)
	if !ok {
		L.RaiseError("string argument only")
	}
	out, valid := ngxDecodeBase64Bytes(make([]byte, 0, len(s)*3/4+3), string(s))
	if !valid {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(out))
	return 1
}

func ngxMD5(L *lua.LState) int {
	sum := md5.Sum([]byte(ngxCoerceString(L, 1)))
	L.Push(lua.LString(hex.EncodeToString(sum[:])))
	return 1
}

func ngxMD5Bin(L *lua.LState) int {
	sum := md5.Sum([]byte(ngxCoerceString(L, 1)))
	L.Push(lua.LString(sum[:]))
	return 1
}

func ngxSHA1Bin(L *lua.LState) int {
	sum := sha1.Sum([]byte(ngxCoerceString(L, 1)))
	L.Push(lua.LString(sum[:]))
	return 1
}

func ngxHMACSHA1(L *lua.LState) int {
	key := L.CheckString(1)
	data := L.CheckString(2)
	m := hmac.New(sha1.New, []byte(key))
	m.Write([]byte(data))
	L.Push(lua.LString(m.Sum(nil)))
	return 1
}

// ngxCRC32 serves both crc32_short and crc32_long: nginx's two variants
// differ only in table size, not in result.
func ngxCRC32(L *lua.LState) int {
	L.Push(lua.LNumber(crc32.ChecksumIEEE([]byte(ngxCoerceString(L, 1)))))
	return 1
}

// AppendQuoteSQLStr appends s quoted for MySQL as ngx.quote_sql_str does
// (ngx_http_lua_ngx_escape_sql_str, wrapped in single quotes).
func AppendQuoteSQLStr(dst []byte, s string) []byte {
	dst = append(dst, '\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			dst = append(dst, '\\', '0')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case 0x1a:
			dst = append(dst, '\\', 'Z')
		case '\\', '\'', '"':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '\'')
}

func ngxQuoteSQLStr(L *lua.LState) int {
	if L.GetTop() != 1 {
		L.RaiseError("expecting one argument")
	}
	s := L.CheckString(1)
	L.Push(lua.LString(AppendQuoteSQLStr(make([]byte, 0, len(s)+2), s)))
	return 1
}
