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
	for name, fn := range map[string]lua.LGFunction{
		"get_method":    vm.reqGetMethod,
		"set_method":    vm.reqSetMethod,
		"http_version":  vm.reqHTTPVersion,
		"raw_header":    vm.reqRawHeader,
		"start_time":    vm.reqStartTime,
		"is_internal":   vm.reqIsInternal,
		"get_headers":   vm.reqGetHeaders,
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

func (vm *VM) reqSetMethod(L *lua.LState) int {
	r := vm.request(L)
	name := methodName(L.CheckInt(1))
	if name == "" {
		L.RaiseError("unsupported HTTP method: %d", L.CheckInt(1))
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

func (vm *VM) reqRawHeader(L *lua.LState) int {
	r := vm.request(L)
	h := &r.Ctx.Request.Header
	var b []byte
	if !L.OptBool(1, false) {
		b = append(b, h.Method()...)
		b = append(b, ' ')
		b = append(b, h.RequestURI()...)
		b = append(b, ' ')
		b = append(b, h.Protocol()...)
		b = append(b, "\r\n"...)
	}
	b = append(b, h.RawHeaders()...)
	if !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		b = append(b, "\r\n"...)
	}
	L.Push(lua.LString(b))
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

// reqGetHeaders returns the request headers as lua-nginx-module does: keys
// lowercased (unless raw), repeated headers as arrays, at most max (100)
// headers with "truncated" as the second result past that.
func (vm *VM) reqGetHeaders(L *lua.LState) int {
	r := vm.request(L)
	max := L.OptInt(1, 100)
	raw := L.OptBool(2, false)
	t := L.CreateTable(0, 0)
	n := 0
	truncated := false
	r.Ctx.Request.Header.VisitAll(func(k, v []byte) {
		if max > 0 && n >= max {
			truncated = true
			return
		}
		n++
		key := string(k)
		if !raw {
			key = strings.ToLower(key)
		}
		lk := lua.LString(key)
		switch old := t.RawGet(lk).(type) {
		case *lua.LNilType:
			t.RawSet(lk, lua.LString(v))
		case *lua.LTable:
			old.Append(lua.LString(v))
		default:
			arr := L.CreateTable(2, 0)
			arr.Append(old)
			arr.Append(lua.LString(v))
			t.RawSet(lk, arr)
		}
	})
	if !raw {
		// ngx.req.get_headers().Content_Type style access works in
		// OpenResty through a metatable that normalises the key.
		meta := L.CreateTable(0, 0)
		meta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
			k := strings.ToLower(strings.ReplaceAll(L.CheckString(2), "_", "-"))
			L.Push(L.RawGet(L.CheckTable(1), lua.LString(k)))
			return 1
		}))
		L.SetMetatable(t, meta)
	}
	L.Push(t)
	if truncated {
		L.Push(lua.LString("truncated"))
		return 2
	}
	return 1
}

func (vm *VM) reqSetHeader(L *lua.LState) int {
	r := vm.request(L)
	name := L.CheckString(1) // unlike ngx.header, "_" stays "_"
	h := &r.Ctx.Request.Header
	switch v := L.Get(2).(type) {
	case *lua.LNilType:
		h.Del(name)
	case *lua.LTable:
		h.Del(name)
		n := v.Len()
		for i := 1; i <= n; i++ {
			h.Add(name, headerValue(L, v.RawGetInt(i)))
		}
	default:
		h.Set(name, headerValue(L, v))
	}
	return 0
}

func (vm *VM) reqClearHeader(L *lua.LState) int {
	r := vm.request(L)
	r.Ctx.Request.Header.Del(L.CheckString(1))
	return 0
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
	r.Ctx.Request.SetBodyString(L.CheckString(1))
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
		L.RaiseError("no request body found; maybe you should turn on lua_need_request_body?")
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
	if L.Get(1) == lua.LNil {
		argError(L, 1, "set_uri_args", "string or table expected")
	}
	r.Ctx.URI().SetQueryString(vm.argsString(L, L.Get(1), 1, "set_uri_args"))
	return 0
}

func (vm *VM) reqSetURI(L *lua.LState) int {
	r := vm.request(L)
	uri := L.CheckString(1)
	if uri == "" {
		L.RaiseError("attempt to use zero-length uri")
	}
	if L.OptBool(2, false) {
		if r.Phase != PhaseRewrite {
			L.RaiseError("API disabled in the context of %s", r.Phase.directive())
		}
		r.ExecURI, r.ExecArgs = uri, string(r.Ctx.URI().QueryString())
		vm.Exit(0)
		return 0
	}
	r.Path = append(r.Path[:0:0], uri...)
	r.Ctx.URI().SetPath(uri)
	return 0
}
