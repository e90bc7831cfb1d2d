package luabind

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"
)

// The versions luaserve reports to Lua code that checks for features, those
// of the lua-nginx-module/nginx pair whose behaviour it mirrors.
const (
	NginxVersion     = "1.22.1"
	nginxVersionNum  = 1022001
	ngxLuaVersionNum = 10021
)

// Log levels as ngx.* constants (nginx's NGX_LOG_*).
const (
	LogStderr = iota
	LogEmerg
	LogAlert
	LogCrit
	LogErr
	LogWarn
	LogNotice
	LogInfo
	LogDebug
)

// LevelNames are nginx's log level names, indexed by level.
var LevelNames = [...]string{"stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"}

var httpStatusConsts = map[string]int{
	"HTTP_CONTINUE": 100, "HTTP_SWITCHING_PROTOCOLS": 101,
	"HTTP_OK": 200, "HTTP_CREATED": 201, "HTTP_ACCEPTED": 202, "HTTP_NO_CONTENT": 204,
	"HTTP_PARTIAL_CONTENT": 206, "HTTP_SPECIAL_RESPONSE": 300,
	"HTTP_MOVED_PERMANENTLY": 301, "HTTP_MOVED_TEMPORARILY": 302, "HTTP_SEE_OTHER": 303,
	"HTTP_NOT_MODIFIED": 304, "HTTP_TEMPORARY_REDIRECT": 307, "HTTP_PERMANENT_REDIRECT": 308,
	"HTTP_BAD_REQUEST": 400, "HTTP_UNAUTHORIZED": 401, "HTTP_PAYMENT_REQUIRED": 402,
	"HTTP_FORBIDDEN": 403, "HTTP_NOT_FOUND": 404, "HTTP_NOT_ALLOWED": 405,
	"HTTP_NOT_ACCEPTABLE": 406, "HTTP_REQUEST_TIMEOUT": 408, "HTTP_CONFLICT": 409,
	"HTTP_GONE": 410, "HTTP_UPGRADE_REQUIRED": 426, "HTTP_TOO_MANY_REQUESTS": 429,
	"HTTP_CLOSE": 444, "HTTP_ILLEGAL": 451, "HTTP_INTERNAL_SERVER_ERROR": 500,
	"HTTP_METHOD_NOT_IMPLEMENTED": 501, "HTTP_NOT_IMPLEMENTED": 501, "HTTP_BAD_GATEWAY": 502,
	"HTTP_SERVICE_UNAVAILABLE": 503, "HTTP_GATEWAY_TIMEOUT": 504,
	"HTTP_VERSION_NOT_SUPPORTED": 505, "HTTP_INSUFFICIENT_STORAGE": 507,
}

var httpMethodConsts = map[string]int{
	"HTTP_GET": 2, "HTTP_HEAD": 4, "HTTP_POST": 8, "HTTP_PUT": 16, "HTTP_DELETE": 32,
	"HTTP_MKCOL": 64, "HTTP_COPY": 128, "HTTP_MOVE": 256, "HTTP_OPTIONS": 512,
	"HTTP_PROPFIND": 1024, "HTTP_PROPPATCH": 2048, "HTTP_LOCK": 4096,
	"HTTP_UNLOCK": 8192, "HTTP_PATCH": 16384, "HTTP_TRACE": 32768,
}

// methodName maps ngx.HTTP_* method constants to method names.
func methodName(code int) string {
	for name, c := range httpMethodConsts {
		if c == code {
			return name[5:]
		}
	}
	return ""
}

// openNgx builds the VM's ngx table: hand-written functions closed over the
// VM, so a call finds its request without a registry lookup.
func (vm *VM) openNgx() {
	L := vm.L
	ngx := L.CreateTable(0, 256) // ~200 functions and constants
	vm.ngx = ngx
	fns := map[string]lua.LGFunction{
		"say":          vm.ngxSay,
		"print":        vm.ngxPrint,
		"flush":        vm.ngxFlush,
		"eof":          vm.ngxEOF,
		"exit":         vm.ngxExit,
		"redirect":     vm.ngxRedirect,
		"exec":         vm.ngxExec,
		"sleep":        vm.ngxSleep,
		"log":          vm.ngxLog,
		"get_phase":    vm.ngxGetPhase,
		"send_headers": vm.ngxSendHeaders,
	}
	for name, fn := range fns {
		ngx.RawSetString(name, L.NewFunction(fn))
	}
	for name, v := range httpStatusConsts {
		ngx.RawSetString(name, lua.LNumber(v))
	}
	for name, v := range httpMethodConsts {
		ngx.RawSetString(name, lua.LNumber(v))
	}
	for i, name := range []string{"STDERR", "EMERG", "ALERT", "CRIT", "ERR", "WARN", "NOTICE", "INFO", "DEBUG"} {
		ngx.RawSetString(name, lua.LNumber(i))
	}
	ngx.RawSetString("OK", lua.LNumber(0))
	ngx.RawSetString("ERROR", lua.LNumber(-1))
	ngx.RawSetString("AGAIN", lua.LNumber(-2))
	ngx.RawSetString("DONE", lua.LNumber(-4))
	ngx.RawSetString("DECLINED", lua.LNumber(-5))
	ngx.RawSetString("null", Null)

	ngx.RawSetString("var", vm.proxy(vm.varIndex, vm.varNewIndex))
	ngx.RawSetString("header", vm.proxy(vm.headerIndex, vm.headerNewIndex))
	vm.openNgxReq(ngx)
	vm.openNgxMisc(ngx)
	vm.openNgxTimer(ngx)
	vm.openNgxThread(ngx)
	vm.openNgxLocation(ngx)
	registerNgxEncoding(L, ngx)
	registerNgxTime(L, ngx, vm.opts.clock())
	registerNgxRe(L, ngx)
	registerNgxShared(L, ngx, func(name string) *SharedDict {
		if vm.opts.SharedDict == nil {
			return nil
		}
		return vm.opts.SharedDict(name)
	})

	// ngx.status and ngx.ctx are computed per request, as in
	// lua-nginx-module, through the ngx table's metatable.
	meta := L.CreateTable(0, 0)
	meta.RawSetString("__index", L.NewFunction(vm.ngxIndex))
	meta.RawSetString("__newindex", L.NewFunction(vm.ngxNewIndex))
	L.SetMetatable(ngx, meta)

	L.SetGlobal("ngx", ngx)
	L.SetGlobal("print", L.NewFunction(vm.luaPrint))
	L.PreloadModule("ngx", func(L *lua.LState) int { L.Push(vm.ngx); return 1 })
}

// Null is ngx.null, the very value cjson.null is (OpenResty code compares
// them): a sentinel distinct from nil.
var Null = CjsonNull

// proxy makes a table whose reads and writes go to Go.
func (vm *VM) proxy(index, newindex lua.LGFunction) *lua.LTable {
	L := vm.L
	t := L.CreateTable(0, 0)
	meta := L.CreateTable(0, 0)
	meta.RawSetString("__index", L.NewFunction(index))
	meta.RawSetString("__newindex", L.NewFunction(newindex))
	L.SetMetatable(t, meta)
	return t
}

// request returns the bound request or raises OpenResty's error for calls
// made outside one (init_by_lua, module top level at VM start).
func (vm *VM) request(L *lua.LState) *Request {
	if vm.req == nil {
		if vm.phase == PhaseTimer {
			// lua-nginx-module runs timers on a fake request, whose
			// context check fails rather than the request lookup.
			L.RaiseError("API disabled in the context of ngx.timer")
		}
		L.RaiseError("no request found")
	}
	return vm.req
}

// disabledIn raises lua-nginx-module's error when the current phase is one
// of phases.
func (vm *VM) disabledIn(L *lua.LState, r *Request, phases ...Phase) {
	for _, p := range phases {
		if r.Phase == p {
			L.RaiseError("API disabled in the context of %s", p.directive())
		}
	}
}

func (vm *VM) ngxIndex(L *lua.LState) int {
	switch L.CheckString(2) {
	case "status":
		r := vm.req
		if r == nil {
			L.Push(lua.LNumber(0))
			return 1
		}
		// nginx's headers_out.status: 0 until set or until output sent
		// the headers with the default 200.
		switch {
		case r.Status != 0:
			L.Push(lua.LNumber(r.Status))
		case r.HeadersSent:
			L.Push(lua.LNumber(r.Ctx.Response.StatusCode()))
		default:
			L.Push(lua.LNumber(0))
		}
		return 1
	case "ctx":
		r := vm.request(L)
		if r.ctx == nil {
			r.ctx = L.CreateTable(0, 0)
		}
		L.Push(r.ctx)
		return 1
	case "headers_sent":
		r := vm.request(L)
		L.Push(lua.LBool(r.HeadersSent))
		return 1
	case "is_subrequest":
		r := vm.request(L)
		L.Push(lua.LBool(r.Internal && r.Phase != PhaseContent))
		return 1
	}
	L.Push(lua.LNil)
	return 1
}

func (vm *VM) ngxNewIndex(L *lua.LState) int {
	key := L.CheckString(2)
	switch key {
	case "status":
		r := vm.request(L)
		if r.HeadersSent {
			vm.logRequest(LogErr, r, "attempt to set ngx.status after sending out response headers")
			return 0
		}
		status := L.CheckInt(3)
		r.Status = status
		r.Ctx.Response.SetStatusCode(status)
		return 0
	case "ctx":
		r := vm.request(L)
		if _, ok := L.Get(3).(*lua.LTable); !ok {
			L.RaiseError("ctx should be a table while getting a %s", L.Get(3).Type())
		}
		r.ctx = L.Get(3)
		return 0
	}
	L.RawSet(L.CheckTable(1), L.Get(2), L.Get(3))
	return 0
}

// ---- output ----

func (vm *VM) ngxSay(L *lua.LState) int   { return vm.output(L, "say", true) }
func (vm *VM) ngxPrint(L *lua.LState) int { return vm.output(L, "print", false) }

func (vm *VM) output(L *lua.LState, fname string, newline bool) int {
	r := vm.request(L)
	vm.disabledIn(L, r, PhaseSet, PhaseLog, PhaseInit, PhaseInitWorker, PhaseTimer)
	if r.eof {
		return pushNilErr(L, "seen eof")
	}
	b := vm.buf[:0]
	top := L.GetTop()
	for i := 1; i <= top; i++ {
		b = appendOutput(L, b, L.Get(i), i, fname)
	}
	if newline {
		b = append(b, '\n')
	}
	r.Ctx.Response.AppendBody(b)
	vm.buf = b[:0]
	r.HeadersSent = true
	L.Push(lua.LNumber(1))
	return 1
}

// appendOutput formats one ngx.say/ngx.print argument as lua-nginx-module
// does: numbers with LuaJIT's "%.14g", nested array tables flattened.
func appendOutput(L *lua.LState, b []byte, v lua.LValue, argn int, fname string) []byte {
	switch v := v.(type) {
	case lua.LString:
		return append(b, v...)
	case lua.LNumber:
		return AppendNumber(b, float64(v))
	case lua.LBool:
		if v {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case *lua.LNilType:
		return append(b, "nil"...)
	case *lua.LTable:
		n := v.MaxN()
		if n == 0 && v.Len() == 0 {
			if k, _ := v.Next(lua.LNil); k != lua.LNil {
				argError(L, argn, fname, "non-array table found")
			}
			return b
		}
		if k, _ := v.Next(lua.LNil); k != lua.LNil {
			// every key must be an integer in 1..n
			cnt := 0
			v.ForEach(func(k, _ lua.LValue) {
				if kn, ok := k.(lua.LNumber); !ok || float64(kn) != math.Trunc(float64(kn)) || kn < 1 || int(kn) > n {
					argError(L, argn, fname, "non-array table found")
				}
				cnt++
			})
		}
		for i := 1; i <= n; i++ {
			b = appendOutput(L, b, v.RawGetInt(i), argn, fname)
		}
		return b
	}
	if v == Null {
		return append(b, "null"...)
	}
	argError(L, argn, fname, "string, number, boolean, nil, ngx.null, or array table expected, but got "+v.Type().String())
	return b
}

// AppendNumber formats n as LuaJIT's tostring does ("%.14g"; inf, -inf,
// nan, -0), which is what OpenResty prints; cjson and ngx share it.
func AppendNumber(b []byte, n float64) []byte { return AppendLuaNumber(b, n) }

func (vm *VM) ngxFlush(L *lua.LState) int {
	r := vm.request(L)
	r.HeadersSent = true
	r.Flushed, r.FlushedLen = true, len(r.Ctx.Response.Body())
	L.Push(lua.LNumber(1))
	return 1
}

func (vm *VM) ngxSendHeaders(L *lua.LState) int {
	r := vm.request(L)
	r.HeadersSent = true
	L.Push(lua.LNumber(1))
	return 1
}

func (vm *VM) ngxEOF(L *lua.LState) int {
	r := vm.request(L)
	r.HeadersSent = true
	r.eof = true
	L.Push(lua.LNumber(1))
	return 1
}

// ---- flow ----

func (vm *VM) ngxExit(L *lua.LState) int {
	r := vm.request(L)
	code := L.CheckInt(1)
	if r.Phase == PhaseLog || r.Phase == PhaseSet {
		L.RaiseError("API disabled in the context of %s", r.Phase.directive())
	}
	if r.HeadersSent && code >= 300 {
		// nginx can no longer change what it sent; the request just ends.
		vm.logRequest(LogErr, r, "attempt to set status "+strconv.Itoa(code)+" via ngx.exit after sending out the response status "+strconv.Itoa(r.Ctx.Response.StatusCode()))
	}
	vm.Exit(code)
	return 0
}

// ngxRedirect checks as lua-nginx-module's C function does, in its order:
// the arguments first, then the phase, then whether headers went out.
func (vm *VM) ngxRedirect(L *lua.LState) int {
	n := L.GetTop()
	if n != 1 && n != 2 {
		apiError(L, "expecting one or two arguments")
	}
	uri := checkStr(L, 1)
	status := 302
	if n == 2 {
		status = int(checkNumber(L, 2))
		switch status {
		case 301, 302, 303, 307, 308:
		default:
			apiError(L, "only ngx.HTTP_MOVED_TEMPORARILY, ngx.HTTP_MOVED_PERMANENTLY, ngx.HTTP_PERMANENT_REDIRECT, ngx.HTTP_SEE_OTHER, and ngx.HTTP_TEMPORARY_REDIRECT are allowed")
		}
	}
	r := vm.request(L)
	vm.disabledIn(L, r, PhaseLog, PhaseSet)
	if r.HeadersSent {
		apiError(L, "attempt to call ngx.redirect after sending out the headers")
	}
	r.Ctx.Response.Header.Set("Location", uri)
	vm.Exit(status)
	return 0
}

func (vm *VM) ngxExec(L *lua.LState) int {
	if n := L.GetTop(); n != 1 && n != 2 {
		apiError(L, "expecting one or two arguments, but got %d", n)
	}
	r := vm.request(L)
	uri := checkStr(L, 1)
	if uri == "" {
		apiError(L, "The uri argument is empty")
	}
	vm.disabledIn(L, r, PhaseLog, PhaseSet, PhaseTimer)
	args := vm.argsString(L, L.Get(2), 2, "exec")
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		if args == "" {
			args = uri[i+1:]
		} else {
			args = uri[i+1:] + "&" + args
		}
		uri = uri[:i]
	}
	if r.HeadersSent {
		apiError(L, "attempt to call ngx.exec after sending out response headers")
	}
	r.ExecURI, r.ExecArgs = uri, args
	r.ctx = nil // an internal redirect starts with a fresh ngx.ctx
	vm.Exit(0)
	return 0
}

func (vm *VM) ngxSleep(L *lua.LState) int {
	sec := float64(L.CheckNumber(1))
	if sec < 0 {
		L.RaiseError("invalid sleep duration \"%s\"", L.Get(1).String())
	}
	if r := vm.req; r != nil {
		vm.disabledIn(L, r, PhaseLog, PhaseSet, PhaseInit, PhaseInitWorker)
	}
	t := time.NewTimer(time.Duration(sec * float64(time.Second)))
	select {
	case <-t.C:
	case <-vm.run.Done():
		t.Stop()
	}
	return 0
}

func (vm *VM) ngxGetPhase(L *lua.LState) int {
	if vm.req == nil {
		L.Push(lua.LString(vm.phase.String()))
		return 1
	}
	L.Push(lua.LString(vm.req.Phase.String()))
	return 1
}

// ---- logging ----

func (vm *VM) ngxLog(L *lua.LState) int {
	level := L.CheckInt(1)
	if level < LogStderr || level > LogDebug {
		argError(L, 1, "log", "bad log level")
	}
	vm.logArgs(L, level, 2)
	return 0
}

// luaPrint is OpenResty's print: ngx.log(ngx.NOTICE, ...).
func (vm *VM) luaPrint(L *lua.LState) int {
	vm.logArgs(L, LogNotice, 1)
	return 0
}

func (vm *VM) logArgs(L *lua.LState, level, first int) {
	b := vm.buf[:0]
	b = append(b, "[lua] "...)
	// lua-nginx-module names the caller's source and line.
	if dbg, ok := L.GetStack(1); ok {
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil && dbg.CurrentLine > 0 {
			b = append(b, shortSource(dbg.Source)...)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(dbg.CurrentLine), 10)
			b = append(b, ": "...)
		}
	}
	top := L.GetTop()
	for i := first; i <= top; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			b = append(b, v...)
		case lua.LNumber:
			b = AppendNumber(b, float64(v))
		case lua.LBool:
			b = strconv.AppendBool(b, bool(v))
		case *lua.LNilType:
			b = append(b, "nil"...)
		default:
			if v == Null {
				b = append(b, "null"...)
			} else if L.GetMetaField(v, "__tostring") != lua.LNil {
				b = append(b, L.ToStringMeta(v).String()...)
			} else {
				argError(L, i, "log", "expected table to have __tostring metamethod")
			}
		}
	}
	vm.buf = b[:0]
	vm.logRequest(level, vm.req, string(b))
}

// shortSource is Lua's short_src: the file name of "@file" chunks, the
// chunk name otherwise.
func shortSource(src string) string {
	if strings.HasPrefix(src, "@") {
		return src[1:]
	}
	return src
}

func (vm *VM) logRequest(level int, r *Request, msg string) {
	if vm.opts.Logger != nil {
		vm.opts.Logger.Log(level, r, msg)
	}
}

// Log writes msg through the VM's logger (for bindings in other files).
func (vm *VM) Log(level int, msg string) { vm.logRequest(level, vm.req, msg) }

// ---- ngx.var ----

func (vm *VM) varIndex(L *lua.LState) int {
	r := vm.request(L)
	var name string
	switch k := L.Get(2).(type) {
	case lua.LString:
		name = string(k)
	case lua.LNumber:
		n := int(k)
		if n < 0 || n > 9 {
			L.Push(lua.LNil)
			return 1
		}
		if v := r.Capture(n); v != nil || n < r.NCap {
			L.Push(lua.LString(v))
			return 1
		}
		L.Push(lua.LNil)
		return 1
	default:
		apiError(L, "bad variable name")
	}
	v, ok := r.Var(strings.ToLower(name), vm.buf[:0])
	if !ok || v == nil && !isEmptyVar(name) {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(v))
	return 1
}

// isEmptyVar: variables that exist with an empty value rather than as
// "not found" (nil) when the request lacks them.
func isEmptyVar(name string) bool {
	switch name {
	case "is_args", "uri", "document_uri":
		return true
	}
	return false
}

// varNewIndex is resty.core's var_set: any value but nil is assigned as
// tostring makes it.
func (vm *VM) varNewIndex(L *lua.LState) int {
	r := vm.request(L)
	k, ok := L.Get(2).(lua.LString)
	if !ok {
		apiError(L, "bad variable name")
	}
	name := string(k)
	var val []byte
	if v := L.Get(3); v != lua.LNil {
		val = []byte(luaToString(L, v))
	}
	if !r.SetVar(strings.ToLower(name), val) {
		if _, builtin := r.Var(strings.ToLower(name), vm.buf[:0]); builtin {
			apiError(L, "variable \"%s\" not changeable", name)
		}
		apiError(L, "variable \"%s\" not found for writing; maybe it is a built-in variable that is not changeable or you forgot to use \"set $%s '';\" in the config file to define it first", name, name)
	}
	return 0
}

// ---- ngx.header ----

// normHeader turns a Lua key into a header name: underscores become dashes
// (ngx.header.content_type), as lua-nginx-module does by default.
func normHeader(key string) string {
	if strings.IndexByte(key, '_') < 0 {
		return key
	}
	return strings.ReplaceAll(key, "_", "-")
}

// headerKey is the header name a key of ngx.header stands for: resty.core
// takes tostring of any key.
func headerKey(L *lua.LState, k lua.LValue) string {
	return normHeader(luaToString(L, k))
}

// headerIndex looks the key up unescaped, as resty.core does: a name Lua
// wrote with a space is found under its escaped form only.
func (vm *VM) headerIndex(L *lua.LState) int {
	r := vm.request(L)
	name := headerKey(L, L.Get(2))
	h := &r.Ctx.Response.Header
	if strings.EqualFold(name, "Content-Type") {
		if ct := h.ContentType(); len(ct) > 0 {
			L.Push(lua.LString(ct))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}
	if strings.EqualFold(name, "Content-Length") {
		if cl := h.ContentLength(); cl >= 0 && r.contentLengthSet {
			L.Push(lua.LString(strconv.Itoa(cl)))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}
	var values []string
	for k, v := range h.All() {
		if equalFoldBytes(k, name) {
			values = append(values, string(v))
		}
	}
	switch len(values) {
	case 0:
		L.Push(lua.LNil)
	case 1:
		L.Push(lua.LString(values[0]))
	default:
		t := L.CreateTable(len(values), 0)
		for _, v := range values {
			t.Append(lua.LString(v))
		}
		L.Push(t)
	}
	return 1
}

// headerNewIndex is resty.core's set_resp_header: the key and the values
// (a table's items) go through tostring, and lua-nginx-module %-escapes
// what may not appear in a header name or value.
func (vm *VM) headerNewIndex(L *lua.LState) int {
	r := vm.request(L)
	name := escapeHeader(headerKey(L, L.Get(2)), true)
	if r.HeadersSent {
		vm.logRequest(LogErr, r, "attempt to set ngx.header.HEADER after sending out response headers")
		return 0
	}
	h := &r.Ctx.Response.Header
	val := L.Get(3)
	switch {
	case strings.EqualFold(name, "Content-Type"):
		if val == lua.LNil {
			h.SetContentType("")
		} else {
			h.SetContentType(headerValue(L, val))
		}
		return 0
	case strings.EqualFold(name, "Content-Length"):
		if val == lua.LNil {
			r.contentLengthSet = false
			return 0
		}
		n, err := strconv.Atoi(headerValue(L, val))
		if err != nil || n < 0 {
			L.RaiseError("invalid content length")
		}
		r.contentLengthSet = true
		return 0
	}
	// The engine disables fasthttp's name normalising, so names go out as
	// written (x-lower stays x-lower, as in nginx); replacing one must find
	// it whatever its case.
	delHeaderFold(h, name)
	add := h.Add
	if sendsOwnName(name) {
		add = func(k, v string) { addPlainResponseHeader(h, k, v) }
	}
	switch v := val.(type) {
	case *lua.LNilType:
	case *lua.LTable:
		n := v.Len()
		for i := 1; i <= n; i++ {
			add(name, headerValue(L, v.RawGetInt(i)))
		}
	default:
		add(name, headerValue(L, v))
	}
	return 0
}

// delHeaderFold deletes every header whose name equals name ignoring case.
func delHeaderFold(h *fasthttp.ResponseHeader, name string) {
	var exact []string
	for k := range h.All() {
		if equalFoldBytes(k, name) {
			exact = append(exact, string(k))
		}
	}
	for _, k := range exact {
		h.Del(k)
	}
}

func equalFoldBytes(b []byte, s string) bool {
	return len(b) == len(s) && equalFoldASCII(b, s)
}

// headerValue is a header value from Lua: tostring of it, escaped.
func headerValue(L *lua.LState, v lua.LValue) string {
	return escapeHeader(luaToString(L, v), false)
}

// headerEscape reports whether lua-nginx-module %-escapes c in a header
// name (controls, space, DEL, bytes past ASCII and HTTP's separators but
// '%') or in a value (controls but tab, and DEL), so that nothing Lua
// writes can split the header block.
func headerEscape(c byte, name bool) bool {
	if !name {
		return c < 0x20 && c != '\t' || c == 0x7f
	}
	if c <= 0x20 || c >= 0x7f {
		return true
	}
	return strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0
}

// escapeHeader returns s with what headerEscape names %-escaped.
func escapeHeader(s string, name bool) string {
	i := 0
	for i < len(s) && !headerEscape(s[i], name) {
		i++
	}
	if i == len(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+8)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if c := s[i]; headerEscape(c, name) {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// ---- misc: config, worker ----

func (vm *VM) openNgxMisc(ngx *lua.LTable) {
	L := vm.L
	config := L.CreateTable(0, 0)
	config.RawSetString("subsystem", lua.LString("http"))
	config.RawSetString("debug", lua.LFalse)
	config.RawSetString("is_console", lua.LFalse)
	config.RawSetString("nginx_version", lua.LNumber(nginxVersionNum))
	config.RawSetString("ngx_lua_version", lua.LNumber(ngxLuaVersionNum))
	config.RawSetString("prefix", L.NewFunction(func(L *lua.LState) int {
		p := vm.opts.Prefix
		if p != "" && !strings.HasSuffix(p, "/") {
			p += "/"
		}
		L.Push(lua.LString(p))
		return 1
	}))
	config.RawSetString("nginx_configure", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString(""))
		return 1
	}))
	ngx.RawSetString("config", config)

	worker := L.CreateTable(0, 0)
	worker.RawSetString("id", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LNumber(0)); return 1 }))
	worker.RawSetString("count", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LNumber(1)); return 1 }))
	worker.RawSetString("pid", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LNumber(pid)); return 1 }))
	worker.RawSetString("exiting", L.NewFunction(func(L *lua.LState) int {
		// true while the server stops, and while a retired generation's
		// VM runs its timers prematurely (an nginx worker exiting).
		vm.timers.mu.Lock()
		closing := vm.timers.closing
		vm.timers.mu.Unlock()
		L.Push(lua.LBool(closing || vm.exitingNow()))
		return 1
	}))
	ngx.RawSetString("worker", worker)
}

// argError raises Lua 5.1's luaL_argerror message, which names the function
// in quotes (gopher-lua's ArgError does not).
func argError(L *lua.LState, n int, fname, msg string) {
	L.RaiseError("bad argument #%d to '%s' (%s)", n, fname, msg)
}

// argsString takes a query given as a string, a number or a table (encoded
// as ngx.encode_args does), as ngx.exec and ngx.req.set_uri_args accept
// (capture's args option only lets strings and tables reach it); nil is "".
// fname is unused: the error names the function as the call site does.
func (vm *VM) argsString(L *lua.LState, v lua.LValue, argn int, fname string) string {
	switch a := v.(type) {
	case lua.LString:
		return string(a)
	case lua.LNumber:
		return string(AppendNumber(nil, float64(a)))
	case *lua.LTable:
		L.Push(vm.ngx.RawGetString("encode_args"))
		L.Push(a)
		L.Call(1, 1)
		args := L.ToString(-1)
		L.Pop(1)
		return args
	case *lua.LNilType:
		return ""
	}
	apiArgError(L, argn, "string, number, or table expected, but got "+argTypeName(L, argn))
	return ""
}

// ---- errors as lua-nginx-module raises them ----

// callerWhere is the "chunk:line: " an ngx API error starts with: luaL_error
// in lua-nginx-module's C functions, like resty.core's error(msg, 2), names
// the API's caller when that is Lua code and nothing when the API was called
// straight from pcall or another builtin (gopher-lua's RaiseError names the
// nearest Lua frame instead).
func callerWhere(L *lua.LState) string {
	if dbg, ok := L.GetStack(1); ok {
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil && dbg.What != "G" && dbg.CurrentLine > 0 {
			return shortSource(dbg.Source) + ":" + strconv.Itoa(dbg.CurrentLine) + ": "
		}
	}
	return ""
}

// apiError raises an ngx API error positioned as OpenResty's (callerWhere).
func apiError(L *lua.LState, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	L.Error(lua.LString(callerWhere(L)+msg), 0)
}

// apiArgError raises luaL_argerror's message as LuaJIT words it: the name
// the caller called the function by, "?" (and no position) when it was
// called straight from pcall.
func apiArgError(L *lua.LState, narg int, msg string) {
	where, name := callerWhere(L), "?"
	if where != "" {
		if cur, ok := L.GetStack(0); ok {
			if _, err := L.GetInfo("n", cur, lua.LNil); err == nil && cur.Name != "" {
				name = cur.Name
			}
		}
	}
	L.Error(lua.LString(where+"bad argument #"+strconv.Itoa(narg)+" to '"+name+"' ("+msg+")"), 0)
}

// argTypeName is luaL_typename of argument n: "no value" past the last one.
func argTypeName(L *lua.LState, n int) string {
	if n > L.GetTop() {
		return "no value"
	}
	return typeName(L.Get(n))
}

// checkStr is luaL_checklstring: a string, or a number as LuaJIT formats it.
func checkStr(L *lua.LState, n int) string {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return string(AppendNumber(nil, float64(v)))
	}
	apiArgError(L, n, "string expected, got "+argTypeName(L, n))
	return ""
}

// checkNumber is luaL_checknumber: a number, or a string that reads as one.
func checkNumber(L *lua.LState, n int) float64 {
	switch v := L.Get(n).(type) {
	case lua.LNumber:
		return float64(v)
	case lua.LString:
		if f, err := parseLuaNumber(string(v)); err == nil {
			return f
		}
	}
	apiArgError(L, n, "number expected, got "+argTypeName(L, n))
	return 0
}

// parseLuaNumber converts a string as Lua's tonumber does: decimal or hex,
// surrounding spaces allowed, no "inf" or "nan".
func parseLuaNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	if h := strings.TrimPrefix(s, "-"); len(h) > 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		u, err := strconv.ParseUint(h[2:], 16, 64)
		if neg {
			return -float64(u), err
		}
		return float64(u), err
	}
	if strings.ContainsAny(s, "iInN") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(s, 64)
}

// luaToString is Lua's tostring of v as LuaJIT prints it: numbers with
// "%.14g", __tostring honoured.
func luaToString(L *lua.LState, v lua.LValue) string {
	switch v := v.(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return string(AppendNumber(nil, float64(v)))
	}
	return L.ToStringMeta(v).String()
}
