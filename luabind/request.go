package luabind

import (
	"time"

	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"
)

// Phase is the request phase a Lua chunk runs in. Some ngx calls are only
// allowed in some phases, as in lua-nginx-module.
type Phase uint8

// The phases, in the order a request runs them.
const (
	PhaseInit Phase = iota
	PhaseInitWorker
	PhaseSet
	PhaseRewrite
	PhaseAccess
	PhaseContent
	PhaseLog
	PhaseTimer
)

var phaseNames = [...]string{"init", "init_worker", "set", "rewrite", "access", "content", "log", "timer"}

// String returns the name ngx.get_phase() answers.
func (p Phase) String() string { return phaseNames[p] }

// directive returns the directive family used in "API disabled in the
// context of …" errors.
func (p Phase) directive() string {
	switch p {
	case PhaseInit:
		return "init_by_lua*"
	case PhaseInitWorker:
		return "init_worker_by_lua*"
	case PhaseSet:
		return "set_by_lua*"
	case PhaseRewrite:
		return "rewrite_by_lua*"
	case PhaseAccess:
		return "access_by_lua*"
	case PhaseContent:
		return "content_by_lua*"
	case PhaseLog:
		return "log_by_lua*"
	}
	return "ngx.timer"
}

// Host is what the engine provides to a request beyond the HTTP message:
// logging with the request's context and nginx's variables that only the
// engine knows (server_name, document_root, …). Implementations must be safe
// to call from the request's goroutine only.
type Host interface {
	// Log writes msg to the error log at level (ngx.ERR …) with the
	// request's client/server/request/host suffix when r is not nil.
	Log(level int, r *Request, msg string)
	// Var resolves an engine-owned variable (server_name, document_root,
	// realpath_root, …); ok is false when the engine does not know it.
	Var(r *Request, name string) (value []byte, ok bool)
	// Capture runs subrequests to locations of r's server, concurrently
	// when there are several (ngx.location.capture_multi).
	Capture(r *Request, subs []SubRequest) []SubResponse
}

// Request is one HTTP request as the Lua code sees it. The engine fills the
// exported fields before the first phase; everything here lives only as long
// as the fasthttp handler does. Requests are pooled: Reset clears them.
type Request struct {
	Ctx  *fasthttp.RequestCtx
	Host Host
	// Phase is the phase currently running.
	Phase Phase
	// Captures holds $0…$9 of the regex location that matched: pairs of
	// offsets into Path, -1 when a group did not take part.
	Captures [20]int
	NCap     int
	// Path is the URI path the captures refer to.
	Path []byte
	// UserVars are the variables the config declares with `set`, indexed
	// by UserVarIndex; the engine sizes the slice per generation.
	UserVars     [][]byte
	UserVarIndex map[string]int
	// Start is when the request began (ngx.req.start_time, $request_time).
	Start time.Time
	// Internal is true for ngx.exec / subrequests (ngx.req.is_internal).
	Internal bool
	// Main is the main request of a subrequest (nil otherwise): some
	// nginx variables ($request_method) always describe the main request.
	Main *Request
	// Socket holds the location's lua_socket_* settings (nil: defaults).
	Socket *SocketSettings
	// UnderscoresInHeaders is the server's underscores_in_headers: off,
	// nginx's default, leaves a request header whose name has a '_' out
	// of everything Lua sees.
	UnderscoresInHeaders bool

	// Exited is set by ngx.exit/ngx.redirect/ngx.exec; ExitCode is the
	// status (or ngx.OK, ngx.ERROR …) the phase chain must act on.
	Exited   bool
	ExitCode int
	// ExecURI/ExecArgs are set by ngx.exec: the engine restarts location
	// matching with them.
	ExecURI, ExecArgs string
	// HeadersSent is true once output started (the first ngx.say/print or
	// ngx.flush); ngx.status and ngx.header changes are refused after it,
	// as nginx has already sent them.
	HeadersSent bool
	// Flushed is set by ngx.flush, with FlushedLen the body length then:
	// what nginx would have sent the client already. luaserve sends the
	// response when the handler ends; if the handler fails after a
	// flush, the client gets that much and then a cut connection, as
	// from nginx.
	Flushed    bool
	FlushedLen int
	// Status set through ngx.status (0 = not set).
	Status int

	ctx              lua.LValue // ngx.ctx, created on first use
	bodyRead         bool
	eof              bool // ngx.eof called: later output is refused
	contentLengthSet bool
	// hdrs is the request's header list, split from the raw block hdrRaw
	// when first needed (hdrsParsed); hdrsSet once Lua changed it, hdrOwn
	// holding what Lua wrote.
	hdrs       []reqHeader
	hdrRaw     []byte
	hdrOwn     []byte
	hdrsParsed bool
	hdrsSet    bool
	// lineStarts are the offsets of the raw block's lines that $http_*
	// lookups have read so far, up to lineNext (all once linesDone).
	lineStarts []int32
	lineNext   int32
	linesDone  bool
}

// Reset clears r for reuse.
func (r *Request) Reset() {
	userVars := r.UserVars[:0]
	*r = Request{UserVars: userVars, hdrs: r.hdrs[:0], hdrOwn: r.hdrOwn[:0], lineStarts: r.lineStarts[:0]}
}

// Capture returns $n of the regex location match, or nil.
func (r *Request) Capture(n int) []byte {
	if n >= r.NCap {
		return nil
	}
	lo, hi := r.Captures[2*n], r.Captures[2*n+1]
	if lo < 0 || hi < lo || hi > len(r.Path) {
		return nil
	}
	return r.Path[lo:hi]
}

// SocketSettings are the lua_socket_* directives in effect for a request;
// cosockets and the memcached modules take their defaults from them.
type SocketSettings struct {
	ConnectTimeout, SendTimeout, ReadTimeout time.Duration // default 60s each
	PoolSize                                 int           // default 30
	KeepaliveTimeout                         time.Duration // default 60s
	LogErrors                                bool          // default true
}

// DefaultSocketSettings are lua-nginx-module's defaults.
var DefaultSocketSettings = SocketSettings{
	ConnectTimeout: 60 * time.Second, SendTimeout: 60 * time.Second, ReadTimeout: 60 * time.Second,
	PoolSize: 30, KeepaliveTimeout: 60 * time.Second, LogErrors: true,
}

// SocketDefaults returns the request's socket settings or the defaults.
func (r *Request) SocketDefaults() *SocketSettings {
	if r == nil || r.Socket == nil {
		return &DefaultSocketSettings
	}
	return r.Socket
}
