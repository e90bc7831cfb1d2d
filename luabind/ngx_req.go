package luabind

import (
	"bytes"
	"os"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

var pid = os.Getpid()

// openNgxReq builds ngx.req.
func (vm *VM) openNgxReq(ngx *lua.LTable) {
	L := vm.L
	req := L.CreateTable(0, 0)
	// resty.core's req_headers_mt, made once per VM: get_headers().Foo_Bar
	// finds "foo-bar".
	headersMeta := L.CreateTable(0, 1)
	headersMeta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		k := strings.ReplaceAll(strings.ToLower(luaToString(L, L.Get(2))), "_", "-")
		L.Push(L.RawGet(L.CheckTable(1), lua.LString(k)))
		return 1
	}))
	for name, fn := range map[string]lua.LGFunction{
		"get_method":    vm.reqGetMethod,
		"set_method":    vm.reqSetMethod,
		"http_version":  vm.reqHTTPVersion,
		"raw_header":    vm.reqRawHeader,
		"start_time":    vm.reqStartTime,
		"is_internal":   vm.reqIsInternal,
		"get_headers":   func(L *lua.LState) int { return vm.reqGetHeaders(L, headersMeta) },
		"set_header":    vm.reqSetHeader,
		"clear_header":  vm.reqClearHeader,
		"read_body":     vm.reqReadBody,
		"discard_body":  vm.reqDiscardBody,
		"get_body_data": vm.reqGetBodyData,
		"get_body_file": vm.reqGetBodyFile,
		"set_body_data": vm.reqSetBodyData,
		"get_uri_args":  vm.reqGetURIArgs,
		"set_uri_args":  vm.reqSetURIArgs,
		"get_post_args": vm.reqGetPostArgs,
		"set_uri":       vm.reqSetURI,
	} {
		req.RawSetString(name, L.NewFunction(fn))
	}
	ngx.RawSetString("req", req)
}

func (vm *VM) reqGetMethod(L *lua.LState) int {
	r := vm.request(L)
	L.Push(lua.LString(r.Ctx.Method()))
	return 1
}

// reqSetMethod words its errors as resty.core's error(msg, 2).
func (vm *VM) reqSetMethod(L *lua.LState) int {
	r := vm.request(L)
	m, ok := L.Get(1).(lua.LNumber)
	if !ok {
		apiError(L, "bad method number")
	}
	name := methodName(int(m))
	if name == "" {
		apiError(L, "unsupported HTTP method: %s", AppendNumber(nil, float64(m)))
	}
	r.Ctx.Request.Header.SetMethod(name)
	return 0
}

func (vm *VM) reqHTTPVersion(L *lua.LState) int {
	r := vm.request(L)
	switch string(r.Ctx.Request.Header.Protocol()) {
	case "HTTP/1.0":
		L.Push(lua.LNumber(1.0))
	case "HTTP/0.9":
		L.Push(lua.LNumber(0.9))
	default:
		L.Push(lua.LNumber(1.1))
	}
	return 1
}

// reqRawHeader answers what nginx received: the request line (unless the
// argument is true) and the header block, ended by its blank line.
func (vm *VM) reqRawHeader(L *lua.LState) int {
	r := vm.request(L)
	h := &r.Ctx.Request.Header
	raw := h.RawHeaders()
	eol := "\r\n"
	if i := bytes.IndexByte(raw, '\n'); i == 0 || i > 0 && raw[i-1] != '\r' {
		eol = "\n" // the client ended its lines with LF alone
	}
	b := vm.buf[:0]
	noRequestLine := lua.LVAsBool(L.Get(1))
	if !noRequestLine {
		b = append(b, h.Method()...)
		b = append(b, ' ')
		b = append(b, h.RequestURI()...)
		b = append(b, ' ')
		b = append(b, h.Protocol()...)
		b = append(b, eol...)
	}
	switch {
	case len(raw) == 0 && noRequestLine:
		// no header: fasthttp kept no blank line; lua-nginx-module's
		// length counts a byte past it, the NUL nginx put there
		b = append(append(b, eol...), 0)
	case len(raw) == 0:
		b = append(b, eol...)
	default:
		b = appendRawHeader(b, raw, r.UnderscoresInHeaders)
	}
	L.Push(lua.LString(b))
	vm.buf = b[:0]
	return 1
}

func (vm *VM) reqStartTime(L *lua.LState) int {
	r := vm.request(L)
	L.Push(lua.LNumber(float64(r.Start.UnixMilli()) / 1000))
	return 1
}

func (vm *VM) reqIsInternal(L *lua.LState) int {
	r := vm.request(L)
	L.Push(lua.LBool(r.Internal))
	return 1
}

// reqGetHeaders is resty.core's get_headers: the headers in nginx's order
// and view, the first max of them (100 by default, 0 for all) with
// "truncated" as the second result when there were more; names lowercased
// and the table given meta unless raw; a repeated name's values in an
// array.
func (vm *VM) reqGetHeaders(L *lua.LState, meta *lua.LTable) int {
	r := vm.request(L)
	max := 100
	if v := L.Get(1); v != lua.LNil && v != lua.LFalse {
		max = int(checkNumber(L, 1))
		if max < 0 {
			max = 100
		}
	}
	raw := lua.LVAsBool(L.Get(2))
	t := L.CreateTable(0, 8)
	n := 0
	truncated := false
	key := vm.buf[:0]
	hs := r.headers()
	for i := range hs.list {
		h := &hs.list[i]
		if !hs.valid(h) {
			continue
		}
		k, v := hs.name(h), hs.value(h)
		if max > 0 && n == max {
			truncated = true
			break
		}
		n++
		key = append(key[:0], k...)
		if !raw {
			for i, c := range key {
				if 'A' <= c && c <= 'Z' {
					key[i] = c + 'a' - 'A'
				}
			}
		}
		lk := lua.LString(key)
		switch old := t.RawGetString(string(lk)).(type) {
		case *lua.LNilType:
			t.RawSetString(string(lk), lua.LString(v))
		case *lua.LTable:
			old.Append(lua.LString(v))
		default:
			arr := L.CreateTable(2, 0)
			arr.Append(old)
			arr.Append(lua.LString(v))
			t.RawSetString(string(lk), arr)
		}
	}
	vm.buf = key[:0]
	if !raw {
		L.SetMetatable(t, meta)
	}
	L.Push(t)
	if truncated {
		L.Push(lua.LString("truncated"))
		return 2
	}
	return 1
}

// reqSetHeader is resty.core's set_header (clear_header with override and
// no value): name and values through tostring and escaped, a table's items
// as headers of their own, the first replacing, the others appended.
func (vm *VM) reqSetHeader(L *lua.LState) int {
	r := vm.request(L)
	if L.Get(1) == lua.LNil {
		apiError(L, "bad 'name' argument: string expected, got nil")
	}
	vm.setReqHeader(L, r, escapeHeader(luaToString(L, L.Get(1)), true), L.Get(2))
	return 0
}

func (vm *VM) reqClearHeader(L *lua.LState) int {
	r := vm.request(L)
	vm.setReqHeader(L, r, escapeHeader(luaToString(L, L.Get(1)), true), lua.LNil)
	return 0
}

// setReqHeader changes the header list Lua sees and mirrors the change in
// fasthttp's header, which the rest of the server reads ($host, cookies,
// subrequests' headers).
func (vm *VM) setReqHeader(L *lua.LState, r *Request, name string, val lua.LValue) {
	var values []string
	switch v := val.(type) {
	case *lua.LNilType:
	case *lua.LTable:
		n := v.Len()
		for i := 1; i <= n; i++ {
			values = append(values, headerValue(L, v.RawGetInt(i)))
		}
	default:
		values = append(values, headerValue(L, v))
	}
	if len(values) == 0 {
		r.setHeader([]byte(name), nil, true)
	}
	for i, v := range values {
		r.setHeader([]byte(name), []byte(v), i == 0)
	}
	h := &r.Ctx.Request.Header
	h.Del(name)
	for _, v := range values {
		if v != "" {
			h.Add(name, v)
		}
	}
}

// The body is always read by fasthttp before the handler runs (up to
// client_max_body_size), so read_body only records that it was asked for.
func (vm *VM) reqReadBody(L *lua.LState) int {
	r := vm.request(L)
	vm.disabledIn(L, r, PhaseLog, PhaseSet, PhaseInit, PhaseInitWorker, PhaseTimer)
	r.bodyRead = true
	return 0
}

func (vm *VM) reqDiscardBody(L *lua.LState) int {
	r := vm.request(L)
	r.bodyRead = false
	r.Ctx.Request.ResetBody()
	return 0
}

func (vm *VM) reqGetBodyData(L *lua.LState) int {
	r := vm.request(L)
	body := r.Ctx.Request.Body()
	if !r.bodyRead || len(body) == 0 {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(body))
	return 1
}

// reqGetBodyFile: luaserve keeps bodies in memory (nginx buffers big ones to
// a temp file), so there is never a file.
func (vm *VM) reqGetBodyFile(L *lua.LState) int {
	vm.request(L)
	L.Push(lua.LNil)
	return 1
}

func (vm *VM) reqSetBodyData(L *lua.LState) int {
	r := vm.request(L)
	r.Ctx.Request.SetBodyString(checkStr(L, 1))
	r.bodyRead = true
	return 0
}

func (vm *VM) reqGetURIArgs(L *lua.LState) int {
	r := vm.request(L)
	return vm.decodeArgsInto(L, r.Ctx.URI().QueryString(), L.OptInt(1, 100))
}

func (vm *VM) reqGetPostArgs(L *lua.LState) int {
	r := vm.request(L)
	if !r.bodyRead {
		apiError(L, "no request body found; maybe you should turn on lua_need_request_body?")
	}
	return vm.decodeArgsInto(L, r.Ctx.Request.Body(), L.OptInt(1, 100))
}

// decodeArgsInto answers like ngx.decode_args (same decoder), plus the
// "truncated" flag lua-nginx-module returns: empty segments ("&&") do not
// use up max, but they count towards "truncated".
func (vm *VM) decodeArgsInto(L *lua.LState, raw []byte, max int) int {
	fn := vm.ngx.RawGetString("decode_args")
	L.Push(fn)
	L.Push(lua.LString(dropEmptyArgs(raw)))
	L.Push(lua.LNumber(max))
	L.Call(2, 1)
	if max > 0 && len(raw) > 0 && bytes.Count(raw, []byte("&"))+1 > max {
		L.Push(lua.LString("truncated"))
		return 2
	}
	return 1
}

// dropEmptyArgs removes the empty segments of a query ("&&a=1&" → "a=1").
func dropEmptyArgs(raw []byte) []byte {
	if !bytes.Contains(raw, []byte("&&")) && (len(raw) == 0 || raw[0] != '&' && raw[len(raw)-1] != '&') {
		return raw
	}
	out := make([]byte, 0, len(raw))
	for _, seg := range bytes.Split(raw, []byte("&")) {
		if len(seg) == 0 {
			continue
		}
		if len(out) > 0 {
			out = append(out, '&')
		}
		out = append(out, seg...)
	}
	return out
}

func (vm *VM) reqSetURIArgs(L *lua.LState) int {
	r := vm.request(L)
	if n := L.GetTop(); n != 1 {
		apiError(L, "expecting 1 argument but seen %d", n)
	}
	if L.Get(1) == lua.LNil {
		apiArgError(L, 1, "string, number, or table expected, but got nil")
	}
	r.Ctx.URI().SetQueryString(vm.argsString(L, L.Get(1), 1, "set_uri_args"))
	return 0
}

func (vm *VM) reqSetURI(L *lua.LState) int {
	r := vm.request(L)
	if n := L.GetTop(); n != 1 && n != 2 {
		apiError(L, "expecting 1 argument but seen %d", n)
	}
	uri := checkStr(L, 1)
	if uri == "" {
		apiError(L, "attempt to use zero-length uri")
	}
	if L.GetTop() == 2 && L.CheckBool(2) {
		if r.Phase != PhaseRewrite {
			apiError(L, "API disabled in the context of %s", r.Phase.directive())
		}
		r.ExecURI, r.ExecArgs = uri, string(r.Ctx.URI().QueryString())
		vm.Exit(0)
		return 0
	}
	r.Path = append(r.Path[:0:0], uri...)
	r.Ctx.URI().SetPath(uri)
	return 0
}
