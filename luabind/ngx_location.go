package luabind

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// SubRequest is one ngx.location.capture call: a request to another
// location of the same server, run by the engine.
type SubRequest struct {
	Method string
	URI    string
	Args   string
	// Body is the subrequest's body; HasBody false inherits the parent's
	// for POST/PUT or with always_forward_body, as lua-nginx-module does.
	Body    []byte
	HasBody bool
	// AlwaysForwardBody forwards the parent's body whatever the method.
	AlwaysForwardBody bool
	// ParentBodyRead: the parent read its body (ngx.req.read_body); only
	// then is it forwarded, as in lua-nginx-module.
	ParentBodyRead bool
	// Vars sets variables (declared with `set`) in the subrequest;
	// CopyAllVars copies the parent's. (share_all_vars is treated as
	// copy_all_vars: a subrequest runs in its own VM.)
	Vars        map[string]string
	CopyAllVars bool
}

// SubResponse is what a subrequest answered.
type SubResponse struct {
	Status int
	Header [][2]string
	Body   []byte
}

func (vm *VM) openNgxLocation(ngx *lua.LTable) {
	L := vm.L
	t := L.CreateTable(0, 0)
	t.RawSetString("capture", L.NewFunction(vm.locationCapture))
	t.RawSetString("capture_multi", L.NewFunction(vm.locationCaptureMulti))
	ngx.RawSetString("location", t)
}

func (vm *VM) locationCapture(L *lua.LState) int {
	r := vm.request(L)
	vm.disabledIn(L, r, PhaseLog, PhaseSet, PhaseTimer, PhaseInit, PhaseInitWorker)
	sub := vm.subRequest(L, r, L.CheckString(1), L.Get(2), 2)
	res := vm.capture(L, r, []SubRequest{sub})
	L.Push(vm.subResponseTable(L, res[0]))
	return 1
}

func (vm *VM) locationCaptureMulti(L *lua.LState) int {
	r := vm.request(L)
	vm.disabledIn(L, r, PhaseLog, PhaseSet, PhaseTimer, PhaseInit, PhaseInitWorker)
	list := L.CheckTable(1)
	n := list.Len()
	if n == 0 {
		L.RaiseError("at least one subrequest should be specified")
	}
	subs := make([]SubRequest, n)
	for i := 1; i <= n; i++ {
		spec, ok := list.RawGetInt(i).(*lua.LTable)
		if !ok {
			L.RaiseError("the query argument %d is not a table, but a %s", i, list.RawGetInt(i).Type())
		}
		uri, ok := spec.RawGetInt(1).(lua.LString)
		if !ok {
			L.RaiseError("the query argument %d has no uri", i)
		}
		subs[i-1] = vm.subRequest(L, r, string(uri), spec.RawGetInt(2), 1)
	}
	for _, res := range vm.capture(L, r, subs) {
		L.Push(vm.subResponseTable(L, res))
	}
	return n
}

func (vm *VM) capture(L *lua.LState, r *Request, subs []SubRequest) []SubResponse {
	if r.Host == nil {
		L.RaiseError("ngx.location.capture is not available here")
	}
	return r.Host.Capture(r, subs)
}

// subRequest reads capture's options table.
func (vm *VM) subRequest(L *lua.LState, r *Request, uri string, optsV lua.LValue, argn int) SubRequest {
	sub := SubRequest{Method: "GET", URI: uri, ParentBodyRead: r.bodyRead}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		sub.URI, sub.Args = uri[:i], uri[i+1:]
	}
	opts, ok := optsV.(*lua.LTable)
	if !ok {
		if optsV != lua.LNil {
			argError(L, argn, "capture", "table expected")
		}
		return sub
	}
	if m, ok := opts.RawGetString("method").(lua.LNumber); ok {
		name := methodName(int(m))
		if name == "" {
			L.RaiseError("unsupported HTTP method: %d", int(m))
		}
		sub.Method = name
	}
	switch a := opts.RawGetString("args").(type) {
	case lua.LString, *lua.LTable:
		sub.Args = vm.argsString(L, a, argn, "capture")
	case *lua.LNilType:
	default:
		L.RaiseError("Bad args option value")
	}
	if b, ok := opts.RawGetString("body").(lua.LString); ok {
		sub.Body, sub.HasBody = []byte(b), true
	}
	sub.AlwaysForwardBody = lua.LVAsBool(opts.RawGetString("always_forward_body"))
	sub.CopyAllVars = lua.LVAsBool(opts.RawGetString("copy_all_vars")) || lua.LVAsBool(opts.RawGetString("share_all_vars"))
	if vars, ok := opts.RawGetString("vars").(*lua.LTable); ok {
		sub.Vars = make(map[string]string)
		vars.ForEach(func(k, v lua.LValue) { sub.Vars[k.String()] = v.String() })
	}
	if opts.RawGetString("ctx") != lua.LNil {
		L.RaiseError("the ctx option is not supported: a luaserve subrequest runs in its own Lua VM, which cannot share a table with its parent; pass data through args or vars")
	}
	return sub
}

// subResponseTable is capture's result: { status, header, body, truncated }.
func (vm *VM) subResponseTable(L *lua.LState, res SubResponse) *lua.LTable {
	t := L.CreateTable(0, 4)
	t.RawSetString("status", lua.LNumber(res.Status))
	h := L.CreateTable(0, 0)
	for _, kv := range res.Header {
		key := lua.LString(kv[0])
		switch old := h.RawGet(key).(type) {
		case *lua.LNilType:
			h.RawSet(key, lua.LString(kv[1]))
		case *lua.LTable:
			old.Append(lua.LString(kv[1]))
		default:
			arr := L.CreateTable(2, 0)
			arr.Append(old)
			arr.Append(lua.LString(kv[1]))
			h.RawSet(key, arr)
		}
	}
	t.RawSetString("header", h)
	t.RawSetString("body", lua.LString(res.Body))
	t.RawSetString("truncated", lua.LFalse)
	return t
}
