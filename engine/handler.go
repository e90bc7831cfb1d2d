package engine

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"

	"luaserve/luabind"
)

// maxInternalRedirects bounds ngx.exec chains, as nginx's
// NGX_HTTP_MAX_URI_CHANGES (10) does.
const maxInternalRedirects = 10

// reqState is the engine's side of one request: it implements luabind.Host
// and is pooled, so a request costs no allocation for its bookkeeping.
type reqState struct {
	lr      luabind.Request
	caps    Captures
	g       *generation
	srv     *Server
	loc     *Location
	vm      *luabind.VM
	freshVM bool // lua_code_cache off: closed, not pooled, after the request
	sub     bool // a subrequest: no server-rewrite phase, no access log
	scratch []byte
	tmpl    []byte
	path    []byte
	lookup  func(name string) []byte
}

var reqPool = sync.Pool{New: func() any {
	rs := &reqState{}
	rs.lookup = rs.lookupVar
	return rs
}}

// lookupVar resolves template variables ($arg_x, $1, set variables …).
func (rs *reqState) lookupVar(name string) []byte {
	if v, ok := rs.caps.Lookup(rs.lr.Path, name); ok {
		return v
	}
	v, _ := rs.lr.Var(name, rs.scratch[:0])
	return v
}

// Log implements luabind.Host.
func (rs *reqState) Log(level int, r *luabind.Request, msg string) {
	rs.g.engine.errlog.Log(level, r, msg)
}

// Var implements luabind.Host: the variables only the engine knows.
func (rs *reqState) Var(_ *luabind.Request, name string) ([]byte, bool) {
	switch name {
	case "server_name":
		if rs.srv != nil && len(rs.srv.Names) > 0 {
			return []byte(rs.srv.Names[0].Raw), true
		}
		return nil, true
	case "document_root", "realpath_root":
		if rs.loc != nil && rs.loc.Root != nil {
			return rs.loc.Root.Append(nil, rs.lookup), true
		}
		return nil, true
	}
	if v, ok := rs.caps.Lookup(rs.lr.Path, name); ok {
		return v, true
	}
	return nil, false
}

// handle serves one request on a listener: pick the server block and the
// location, run the phases, write logs.
func (e *Engine) handle(listenAddr string, ctx *fasthttp.RequestCtx) {
	g := e.acquire()
	if g == nil {
		ctx.Error("server shutting down", fasthttp.StatusServiceUnavailable)
		ctx.SetConnectionClose()
		return
	}
	defer g.release()
	// fasthttp read the clock just before calling the handler; reading it
	// again costs as much as the rest of the request's bookkeeping.
	now := ctx.Time()
	if now.IsZero() { // a RequestCtx not served by fasthttp.Server
		now = time.Now()
	}
	luabind.SetClock(now)
	e.run(g, g.router.Server(listenAddr, ctx.Host()), ctx, nil, nil, now)
}

// run serves ctx on srv: a request from a listener, or a subrequest of main
// starting with the variables vars.
func (e *Engine) run(g *generation, srv *Server, ctx *fasthttp.RequestCtx, main *luabind.Request, vars [][]byte, start time.Time) {
	sub := main != nil
	rs := reqPool.Get().(*reqState)
	rs.g = g
	rs.srv = srv
	rs.sub = sub
	r := &rs.lr
	r.Ctx = ctx
	r.Host = rs
	r.Start = start
	r.Internal = sub
	r.Main = main
	r.UnderscoresInHeaders = srv.Loc.UnderscoresInHeaders
	// Header names go out as Lua writes them (x-lower stays x-lower), as
	// nginx sends them.
	ctx.Response.Header.DisableNormalizing()
	r.UserVarIndex = g.userVars
	rs.path = append(rs.path[:0], ctx.Path()...)
	for _, v := range vars {
		r.UserVars = append(r.UserVars, v)
	}
	e.serve(rs)
	if rs.vm != nil {
		rs.vm.End()
		if rs.freshVM {
			rs.vm.Close()
		} else {
			g.pool.put(rs.vm)
		}
	}
	rs.reset()
	reqPool.Put(rs)
}

// Capture implements luabind.Host: ngx.location.capture[_multi]. Each
// subrequest runs like a request of the same server (in its own VM), its
// response is collected instead of sent; several run concurrently.
func (rs *reqState) Capture(r *luabind.Request, subs []luabind.SubRequest) []luabind.SubResponse {
	out := make([]luabind.SubResponse, len(subs))
	if len(subs) == 1 {
		out[0] = rs.subrequest(subs[0])
		return out
	}
	var wg sync.WaitGroup
	for i := range subs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out[i] = rs.subrequest(subs[i])
		}(i)
	}
	wg.Wait()
	return out
}

func (rs *reqState) subrequest(sr luabind.SubRequest) luabind.SubResponse {
	parent := rs.lr.Ctx
	var req fasthttp.Request
	parent.Request.Header.CopyTo(&req.Header) // subrequests see the parent's headers
	req.Header.SetMethod(sr.Method)
	uri := sr.URI
	if sr.Args != "" {
		uri += "?" + sr.Args
	}
	req.SetRequestURI(uri)
	req.Header.Del("Content-Length")
	switch {
	case sr.HasBody:
		req.SetBody(sr.Body)
	case sr.ParentBodyRead && (sr.AlwaysForwardBody || sr.Method == "POST" || sr.Method == "PUT"):
		req.SetBody(parent.Request.Body())
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, parent.RemoteAddr(), nil)
	var vars [][]byte
	if sr.CopyAllVars {
		for _, v := range rs.lr.UserVars {
			vars = append(vars, append([]byte(nil), v...))
		}
	}
	for name, v := range sr.Vars {
		i, ok := rs.g.userVars[name]
		if !ok {
			continue
		}
		for len(vars) <= i {
			vars = append(vars, nil)
		}
		vars[i] = []byte(v)
	}
	main := &rs.lr
	if main.Main != nil {
		main = main.Main
	}
	rs.g.engine.run(rs.g, rs.srv, &ctx, main, vars, time.Now())
	res := luabind.SubResponse{Status: ctx.Response.StatusCode(), Body: append([]byte(nil), ctx.Response.Body()...)}
	ctx.Response.Header.VisitAll(func(k, v []byte) {
		res.Header = append(res.Header, [2]string{string(k), string(v)})
	})
	if ct := ctx.Response.Header.ContentType(); len(ct) > 0 {
		res.Header = append(res.Header, [2]string{"Content-Type", string(ct)})
	}
	return res
}
func (rs *reqState) reset() {
	rs.lr.Reset()
	rs.caps.reset()
	rs.g, rs.srv, rs.loc, rs.vm, rs.freshVM, rs.sub = nil, nil, nil, nil, false, false
}

// serve runs location matching and the phases, restarting on ngx.exec.
func (e *Engine) serve(rs *reqState) {
	r := &rs.lr
	ctx := r.Ctx
	for redirects := 0; ; redirects++ {
		if redirects > maxInternalRedirects {
			e.errlog.Log(luabind.LogErr, r, "rewrite or internal redirection cycle while internally redirecting to \""+string(rs.path)+"\"")
			rs.finish(500)
			return
		}
		// nginx's server-rewrite phase: server-level set and return run
		// before the location is chosen, again after an internal redirect,
		// and for subrequests.
		if sl := rs.srv.Loc; sl != nil && (len(sl.Sets) > 0 || sl.Return != nil) {
			rs.loc = sl
			r.Path = rs.path
			for _, s := range sl.Sets {
				rs.tmpl = s.Value.Append(rs.tmpl[:0], rs.lookup)
				r.SetVar(s.Name, rs.tmpl)
			}
			if sl.Return != nil {
				rs.doReturn(sl.Return)
				break
			}
		}
		rs.caps.reset()
		loc := rs.srv.Match(rs.path, &rs.caps)
		if loc == nil {
			loc = rs.srv.Loc
		}
		rs.loc = loc
		r.Socket = rs.g.sockets[loc]
		r.Path = rs.path
		rs.copyCaptures()
		if redirects == 0 {
			if loc.ClientMaxBodySize > 0 && int64(ctx.Request.Header.ContentLength()) > loc.ClientMaxBodySize {
				e.errlog.Log(luabind.LogErr, r, "client intended to send too large body: "+strconv.Itoa(ctx.Request.Header.ContentLength())+" bytes")
				rs.finish(fasthttp.StatusRequestEntityTooLarge)
				ctx.SetConnectionClose()
				return
			}
			// nginx types every response by the URI's extension (a
			// handler at /x.jpg answers image/jpeg), else default_type.
			if ct := rs.contentType(loc); ct != "" {
				ctx.Response.Header.SetContentType(ct)
			}
		}
		again := rs.runPhases()
		if !again {
			break
		}
		// ngx.exec: a new URI, a fresh run of the phases.
		rs.path = append(rs.path[:0], r.ExecURI...)
		ctx.URI().SetQueryString(r.ExecArgs)
		r.Internal = true
		r.Exited, r.ExitCode, r.ExecURI, r.ExecArgs = false, 0, "", ""
	}
	rs.logPhase()
}

// copyCaptures exposes $0…$9 of the location regex to luabind.
func (rs *reqState) copyCaptures() {
	r := &rs.lr
	n := rs.caps.Len()
	if n > 10 {
		n = 10
	}
	r.NCap = n
	for i := 0; i < n; i++ {
		r.Captures[2*i], r.Captures[2*i+1] = rs.caps.idx[2*i], rs.caps.idx[2*i+1]
	}
}

// runPhases runs rewrite → access → content for the current location. It
// returns true when ngx.exec asked for an internal redirect.
func (rs *reqState) runPhases() bool {
	r := &rs.lr
	loc := rs.loc
	// nginx's rewrite module (set, return) runs before rewrite_by_lua.
	for _, s := range loc.Sets {
		rs.tmpl = s.Value.Append(rs.tmpl[:0], rs.lookup)
		r.SetVar(s.Name, rs.tmpl)
	}
	if ret := loc.Return; ret != nil {
		rs.doReturn(ret)
		return false
	}
	for _, ph := range [...]struct {
		phase luabind.Phase
		chunk *LuaChunk
	}{
		{luabind.PhaseRewrite, loc.Rewrite},
		{luabind.PhaseAccess, loc.Access},
		{luabind.PhaseContent, loc.Content},
	} {
		if ph.chunk == nil {
			continue
		}
		r.Phase = ph.phase
		if !rs.runChunk(ph.chunk) {
			return false // failed: the response is already final
		}
		if r.ExecURI != "" {
			return true
		}
		if r.Exited {
			code := r.ExitCode
			if ph.phase != luabind.PhaseContent && code == 0 {
				// ngx.exit(ngx.OK) in rewrite/access: on to the next phase.
				r.Exited, r.ExitCode = false, 0
				continue
			}
			rs.exitWith(code)
			return false
		}
		if ph.phase == luabind.PhaseContent {
			rs.finish(0)
			return false
		}
	}
	// No content handler: nginx's static module.
	rs.serveStatic()
	return false
}

// getVM takes a VM from the generation's pool, or, under lua_code_cache
// off, makes a fresh one that reads every module from disk again.
func (rs *reqState) getVM() (*luabind.VM, error) {
	if !rs.loc.LuaCodeCache {
		rs.freshVM = true
		return luabind.NewVM(rs.g.noCache)
	}
	return rs.g.pool.get()
}

// runChunk runs one phase handler; false means it failed and the response
// (500 or 503) is final.
func (rs *reqState) runChunk(c *LuaChunk) bool {
	r := &rs.lr
	e := rs.g.engine
	proto, err := rs.proto(c)
	if err != nil {
		e.errlog.Log(luabind.LogErr, r, err.Error())
		if errors.Is(err, fs.ErrNotExist) {
			// lua-nginx-module maps LUA_ERRFILE to 404.
			rs.finish(fasthttp.StatusNotFound)
		} else {
			rs.finish(500)
		}
		return false
	}
	if rs.vm == nil {
		vm, err := rs.getVM()
		if err != nil {
			e.errlog.Log(luabind.LogErr, r, "failed to get a Lua VM: "+err.Error())
			if errors.Is(err, ErrPoolExhausted) {
				rs.finish(fasthttp.StatusServiceUnavailable)
			} else {
				rs.finish(500)
			}
			return false
		}
		rs.vm = vm
		vm.Bind(r)
	}
	err = rs.vm.Run(proto, rs.loc.LuaRequestTimeout)
	if err == nil {
		return true
	}
	if errors.Is(err, luabind.ErrTimeout) {
		e.errlog.Log(luabind.LogErr, r, "lua entry thread aborted: runtime error: "+c.Name+": lua_request_timeout ("+rs.loc.LuaRequestTimeout.String()+") exceeded")
	} else {
		msg := "lua entry thread aborted: runtime error: " + err.Error()
		var lerr *luabind.LuaError
		if errors.As(err, &lerr) && lerr.Traceback != "" {
			msg += "\n" + lerr.Traceback
		}
		e.errlog.Log(luabind.LogErr, r, msg)
	}
	rs.fail(500)
	return false
}

// fail answers status for a request whose handler failed. Once output has
// started (ngx.say, print, flush, send_headers, eof), nginx has committed
// the status line and can only cut the connection: the client gets no
// complete response, so it cannot take a half-written page for a success.
// luaserve does the same, and as it buffers the output until the handler
// ends, the client gets nothing at all — as from nginx when nothing had
// been flushed yet. A subrequest's failure after output is its parent's to
// handle: it answers a whole error as before.
func (rs *reqState) fail(status int) {
	if rs.lr.HeadersSent {
		if !rs.sub {
			rs.cut()
			return
		}
		rs.lr.HeadersSent = false
		rs.lr.Ctx.Response.ResetBody()
		rs.lr.Ctx.Response.Header.SetContentType(rs.loc.DefaultType)
	}
	rs.finish(status)
}

// cut ends a main request whose handler failed after output: no response
// but what nginx would have sent before the failure (the status line,
// headers and body up to the last ngx.flush, chunked), then the connection
// closes.
func (rs *reqState) cut() {
	ctx := rs.lr.Ctx
	ctx.HijackSetNoResponse(true)
	if !rs.lr.Flushed {
		ctx.Hijack(func(net.Conn) {}) // fasthttp closes the connection after it
		return
	}
	ctx.Response.Header.SetContentLength(-1) // chunked
	out := ctx.Response.Header.AppendBytes(nil)
	if body := ctx.Response.Body()[:rs.lr.FlushedLen]; len(body) > 0 && !ctx.IsHead() {
		out = strconv.AppendInt(out, int64(len(body)), 16)
		out = append(out, "\r\n"...)
		out = append(out, body...)
		out = append(out, "\r\n"...)
	}
	ctx.Hijack(func(c net.Conn) {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // the write below fails then
		c.Write(out)                                         //nolint:errcheck // the connection is cut anyway
	})
}

// proto returns the compiled chunk for c in this request: inline and static
// file chunks are compiled at load; file paths with variables are resolved
// and compiled on first use.
func (rs *reqState) proto(c *LuaChunk) (*lua.FunctionProto, error) {
	if c.Proto != nil && rs.loc.LuaCodeCache {
		return c.Proto, nil
	}
	if c.Path == nil {
		return c.Proto, nil
	}
	var err error
	rs.tmpl, err = c.AppendPath(rs.tmpl[:0], rs.lookup)
	if err != nil {
		return nil, errors.New("failed to load external Lua file \"" + string(rs.tmpl) + "\": " + err.Error())
	}
	return rs.g.fileProto(string(rs.tmpl), rs.loc.LuaCodeCache)
}

// exitWith finishes the request after ngx.exit(code) / ngx.redirect.
func (rs *reqState) exitWith(code int) {
	switch {
	case code == -1: // ngx.ERROR
		rs.finish(500)
	case code >= 100:
		rs.finish(code)
	default: // ngx.OK and friends in content: done as is
		rs.finish(0)
	}
}

// finish makes the response final. status 0 keeps what the handler set.
// Without output, statuses nginx has a page for get it (as nginx does for
// ngx.exit(404)); others get an empty body.
func (rs *reqState) finish(status int) {
	r := &rs.lr
	ctx := r.Ctx
	if r.HeadersSent || status == 0 {
		return
	}
	ctx.Response.SetStatusCode(status)
	switch {
	case status == 444:
		ctx.SetConnectionClose()
		ctx.Response.ResetBody()
	case status == 204 || status == 304:
		ctx.Response.ResetBody()
		ctx.Response.Header.SetContentType("")
		ctx.Response.Header.Del("Content-Type")
	case status >= 300 && len(ctx.Response.Body()) == 0:
		if rs.sub || !hasSpecialPage(status) {
			// subrequests answer no page, and nginx has none for
			// statuses it does not know
			ctx.Response.Header.SetContentType("")
			ctx.Response.Header.Del("Content-Type")
			return
		}
		writeSpecialResponse(ctx, status)
	}
}

// absoluteLocation turns "Location: /path" into scheme://host:port/path,
// as nginx's absolute_redirect and port_in_redirect do for `return`: the
// Host header's name, the port the request came in on unless it is the
// scheme's default (ngx.redirect's Location is sent as given).
func absoluteLocation(ctx *fasthttp.RequestCtx) {
	loc := ctx.Response.Header.Peek("Location")
	if len(loc) == 0 || loc[0] != '/' {
		return
	}
	scheme, defPort := "http://", 80
	if ctx.IsTLS() {
		scheme, defPort = "https://", 443
	}
	abs := make([]byte, 0, 64+len(loc))
	abs = append(abs, scheme...)
	host := ctx.Host()
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		host = host[:i]
	}
	abs = append(abs, host...)
	if a, ok := ctx.LocalAddr().(*net.TCPAddr); ok && a.Port != defPort {
		abs = append(abs, ':')
		abs = strconv.AppendInt(abs, int64(a.Port), 10)
	}
	abs = append(abs, loc...)
	ctx.Response.Header.SetBytesV("Location", abs)
}

// doReturn runs nginx's `return code [text|URL]`.
func (rs *reqState) doReturn(ret *Return) {
	ctx := rs.lr.Ctx
	var text []byte
	if ret.Text != nil {
		text = ret.Text.Append(nil, rs.lookup)
	}
	switch ret.Code {
	case 301, 302, 303, 307, 308:
		if text != nil {
			ctx.Response.Header.SetBytesV("Location", text)
			absoluteLocation(ctx)
		}
		rs.finish(ret.Code)
		return
	}
	if text == nil {
		rs.finish(ret.Code)
		return
	}
	ctx.Response.SetStatusCode(ret.Code)
	ctx.Response.SetBody(text)
	rs.lr.HeadersSent = true
}

// logPhase runs log_by_lua and writes the access log line.
func (rs *reqState) logPhase() {
	r := &rs.lr
	loc := rs.loc
	if loc == nil {
		return
	}
	if loc.Log != nil {
		r.Phase = luabind.PhaseLog
		r.Exited = false
		rs.runLogChunk(loc.Log)
	}
	if loc.AccessLog != nil && !rs.sub { // nginx: log_subrequest off
		if a := rs.g.logs[loc.AccessLog.Path]; a != nil {
			a.log(r)
		}
	}
}

func (rs *reqState) runLogChunk(c *LuaChunk) {
	r := &rs.lr
	e := rs.g.engine
	proto, err := rs.proto(c)
	if err != nil {
		e.errlog.Log(luabind.LogErr, r, err.Error())
		return
	}
	if rs.vm == nil {
		vm, err := rs.getVM()
		if err != nil {
			e.errlog.Log(luabind.LogErr, r, "failed to get a Lua VM for log_by_lua: "+err.Error())
			return
		}
		rs.vm = vm
		vm.Bind(r)
	}
	if err := rs.vm.Run(proto, rs.loc.LuaRequestTimeout); err != nil {
		e.errlog.Log(luabind.LogErr, r, "failed to run log_by_lua*: "+err.Error())
	}
}
