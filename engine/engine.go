package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"

	"luaserve/luabind"
	"luaserve/memcached"
	"luaserve/memcached/server"
)

// Options configure an Engine.
type Options struct {
	// Prefix is nginx's -p (default: the current directory).
	Prefix string
	// ConfFile is nginx's -c, relative to Prefix unless absolute
	// (default conf/nginx.conf).
	ConfFile string
	// ErrorLog, when set, receives the error log instead of the file the
	// config names (tests use it).
	ErrorLog io.Writer
	// Preload adds Go-native modules to every VM (name → loader); the spec
	// runner registers its HTTP helper this way.
	Preload map[string]lua.LGFunction
	// NoHotReload disables the file watcher whatever lua_hot_reload says
	// (luaserve -hot-reload=false). SIGHUP and -s reload still reload.
	NoHotReload bool
}

// Engine is one luaserve server: its listeners, its current generation and
// the process-wide state that outlives reloads (shared dicts, access log
// files, the embedded memcached).
type Engine struct {
	opts   Options
	errlog *ErrorLog

	mu        sync.Mutex // serialises Start, Reload, Shutdown
	gen       atomic.Pointer[generation]
	nextID    int64
	listeners map[string]*listener
	started   bool

	dictMu sync.Mutex
	dicts  map[string]*luabind.SharedDict

	accessLogs accessLogs
	mcPools    memcached.Pools // shared by every VM of every generation
	embedded   *server.Server
	exiting    atomic.Bool
	watch      *watcher
}

// listener is one open listen socket with its fasthttp server. It lives
// across reloads as long as some server block still listens there.
type listener struct {
	key  string // Listen.Addr as the config writes it
	ln   net.Listener
	srv  *fasthttp.Server
	done chan struct{}
}

// New loads the config and builds the first generation; nothing listens
// until Start.
func New(opts Options) (*Engine, error) {
	if opts.Prefix == "" {
		opts.Prefix = "."
	}
	if opts.ConfFile == "" {
		opts.ConfFile = "conf/nginx.conf"
	}
	cfg, err := Load(opts.Prefix, opts.ConfFile)
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, listeners: make(map[string]*listener), dicts: make(map[string]*luabind.SharedDict)}
	if opts.ErrorLog != nil {
		e.errlog = NewErrorLog(opts.ErrorLog, cfg.ErrorLog.Level)
	} else {
		e.errlog, err = OpenErrorLog(cfg.ErrorLog.Path, cfg.ErrorLog.Level)
		if err != nil {
			return nil, fmt.Errorf("open() %q failed (%v)", cfg.ErrorLog.Path, err)
		}
	}
	for _, w := range cfg.Warnings {
		e.errlog.Logf(luabind.LogWarn, "%s in %s:%d", w.Msg, w.File, w.Line)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &HTTP{HotReload: true}
	}
	e.syncDicts(cfg)
	e.nextID = 1
	g, err := e.newGeneration(cfg, e.nextID)
	if err != nil {
		e.errlog.Close()
		return nil, err
	}
	e.gen.Store(g)
	return e, nil
}

// Config returns the config being served.
func (e *Engine) Config() *Config { return e.gen.Load().cfg }

// ErrorLog returns the engine's error log.
func (e *Engine) ErrorLog() *ErrorLog { return e.errlog }

// Generation returns the number of the generation being served (1 for the
// first load, +1 per successful reload).
func (e *Engine) Generation() int64 { return e.gen.Load().id }

// syncDicts creates the lua_shared_dicts a config declares; existing ones
// keep their data across reloads, as in nginx.
func (e *Engine) syncDicts(cfg *Config) {
	e.dictMu.Lock()
	defer e.dictMu.Unlock()
	for _, d := range cfg.HTTP.SharedDicts {
		if _, ok := e.dicts[d.Name]; !ok {
			e.dicts[d.Name] = luabind.NewSharedDict(d.Name, d.Size)
		}
	}
}

func (e *Engine) sharedDict(name string) *luabind.SharedDict {
	e.dictMu.Lock()
	defer e.dictMu.Unlock()
	return e.dicts[name]
}

// acquire returns the current generation with a reference taken, or nil
// once the engine shut down.
func (e *Engine) acquire() *generation {
	for {
		g := e.gen.Load()
		if g == nil {
			return nil
		}
		if g.tryAcquire() {
			return g
		}
		if e.exiting.Load() && e.gen.Load() == g {
			return nil
		}
	}
}

// Start starts the embedded memcached (if configured) and opens every
// listener of the config.
func (e *Engine) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("engine: already started")
	}
	cfg := e.gen.Load().cfg
	if m := cfg.Embedded; m != nil {
		s, err := server.Start(server.Config{Addr: m.Addr, MaxBytes: m.Size})
		if err != nil {
			return &ConfigError{File: m.File, Line: m.Line, Msg: fmt.Sprintf("memcached_embedded: %v", err)}
		}
		e.embedded = s
		e.errlog.Logf(luabind.LogNotice, "embedded memcached listening on %s", s.Addr())
	}
	if err := e.syncListeners(e.gen.Load()); err != nil {
		e.closeListeners()
		if e.embedded != nil {
			e.embedded.Close()
		}
		return err
	}
	e.started = true
	e.writePid(cfg)
	if !e.opts.NoHotReload {
		// The watcher checks lua_hot_reload on every poll, so turning it
		// off (or on) in the config takes effect with the next reload.
		e.startWatcher()
	}
	return nil
}

// syncListeners opens the listen addresses g needs that are not open yet
// and closes those it no longer has. A failure to open leaves the set as it
// was.
func (e *Engine) syncListeners(g *generation) error {
	want := make(map[string]Listen)
	for _, l := range g.router.Listens() {
		want[l.Addr] = l
	}
	var opened []*listener
	for key, l := range want {
		if _, ok := e.listeners[key]; ok {
			continue
		}
		ln, err := listen(l)
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			return &ConfigError{File: l.File, Line: l.Line, Msg: fmt.Sprintf("bind() to %s failed (%v)", l.Addr, err)}
		}
		opened = append(opened, e.newListener(key, ln, g))
	}
	for _, o := range opened {
		e.listeners[o.key] = o
		go e.serveListener(o)
	}
	for key, o := range e.listeners {
		if _, ok := want[key]; !ok {
			o.ln.Close()
			delete(e.listeners, key)
			go o.srv.Shutdown() //nolint:errcheck // drains its connections in the background
		}
	}
	return nil
}

func listen(l Listen) (net.Listener, error) {
	if l.Network == "unix" {
		os.Remove(l.Addr) //nolint:errcheck // a stale socket from an earlier run
		return net.Listen("unix", l.Addr)
	}
	return net.Listen("tcp", l.Addr)
}

func (e *Engine) newListener(key string, ln net.Listener, g *generation) *listener {
	o := &listener{key: key, ln: ln, done: make(chan struct{})}
	maxBody := int64(0)
	keepalive := DefaultKeepaliveTimeout
	for _, s := range g.cfg.HTTP.Servers {
		if s.Loc != nil && s.Loc.KeepaliveTimeout > 0 {
			keepalive = s.Loc.KeepaliveTimeout
		}
	}
	maxBody = maxBodySize(g.cfg.HTTP)
	o.srv = &fasthttp.Server{
		Handler:                      func(ctx *fasthttp.RequestCtx) { e.handle(key, ctx) },
		Name:                         "luaserve",
		NoDefaultContentType:         true,
		MaxRequestBodySize:           int(maxBody),
		IdleTimeout:                  keepalive,
		CloseOnShutdown:              true,
		ReadBufferSize:               8 << 10,
		DisablePreParseMultipartForm: true,
		Logger:                       fasthttpLogger{e.errlog},
	}
	return o
}

// maxBodySize is the largest body any location accepts (each location
// checks its own client_max_body_size); 0 ("unlimited") allows 1 GiB.
func maxBodySize(h *HTTP) int64 {
	max := int64(DefaultClientMaxBodySize)
	var walk func(l *Location)
	walk = func(l *Location) {
		if l == nil {
			return
		}
		if l.ClientMaxBodySize == 0 {
			max = 1 << 30
		} else if l.ClientMaxBodySize > max {
			max = l.ClientMaxBodySize
		}
		for _, n := range l.Locations {
			walk(n)
		}
	}
	for _, s := range h.Servers {
		walk(s.Loc)
		for _, l := range s.Locations {
			walk(l)
		}
	}
	return max
}

type fasthttpLogger struct{ l *ErrorLog }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Logf(luabind.LogInfo, format, args...)
}

func (e *Engine) serveListener(o *listener) {
	defer close(o.done)
	if err := o.srv.Serve(o.ln); err != nil && !errors.Is(err, net.ErrClosed) {
		e.errlog.Logf(luabind.LogErr, "serving %s: %v", o.key, err)
	}
}

// Addrs returns the addresses the engine listens on, sorted (":0" listens
// resolve to their real port here).
func (e *Engine) Addrs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, o := range e.listeners {
		out = append(out, o.ln.Addr().String())
	}
	sort.Strings(out)
	return out
}

// ListenerAddr returns the real address of the listener a config writes as
// key (e.g. "127.0.0.1:0").
func (e *Engine) ListenerAddr(key string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if o, ok := e.listeners[key]; ok {
		return o.ln.Addr().String()
	}
	return ""
}

// Handler returns the request handler for connections arriving on the
// listen address key, for serving from an in-memory listener in tests.
func (e *Engine) Handler(key string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) { e.handle(key, ctx) }
}

// EmbeddedAddr returns the embedded memcached's address, or "".
func (e *Engine) EmbeddedAddr() string {
	if e.embedded == nil {
		return ""
	}
	return e.embedded.Addr().String()
}

// Reload loads the config again and swaps in a complete new generation. On
// any error the current generation keeps serving and the error is returned
// (and logged).
func (e *Engine) Reload() error { return e.reload("signal") }

func (e *Engine) reload(why string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exiting.Load() {
		return errors.New("engine: shutting down")
	}
	start := time.Now()
	cfg, err := Load(e.opts.Prefix, e.opts.ConfFile)
	if err == nil {
		if cfg.HTTP == nil {
			cfg.HTTP = &HTTP{HotReload: true}
		}
		e.syncDicts(cfg)
	}
	var g *generation
	if err == nil {
		g, err = e.newGeneration(cfg, e.nextID+1)
	}
	if err == nil && e.started {
		if err = e.syncListeners(g); err != nil {
			g.release()
		}
	}
	if err != nil {
		e.errlog.Logf(luabind.LogErr, "reload failed, still serving generation %d: %v", e.gen.Load().id, err)
		return err
	}
	e.nextID++
	old := e.gen.Swap(g)
	old.release()
	e.logReload(g, why, time.Since(start))
	return nil
}

// Shutdown stops serving. Graceful waits for in-flight requests (bounded by
// ctx); otherwise open connections are closed at once.
func (e *Engine) Shutdown(ctx context.Context, graceful bool) error {
	e.exiting.Store(true)
	if w := e.watch; w != nil {
		e.watch = nil
		w.close() // before taking mu: a reload in progress finishes first
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if g := e.gen.Load(); g != nil {
		e.removePid(g.cfg)
	}
	var wg sync.WaitGroup
	for key, o := range e.listeners {
		delete(e.listeners, key)
		wg.Add(1)
		go func(o *listener) {
			defer wg.Done()
			if graceful {
				o.srv.ShutdownWithContext(ctx) //nolint:errcheck // ctx bounds it
			} else {
				o.ln.Close()
				sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				o.srv.ShutdownWithContext(sctx) //nolint:errcheck // forced below
				cancel()
			}
		}(o)
	}
	wg.Wait()
	if g := e.gen.Swap(nil); g != nil {
		g.release()
		if graceful {
			select {
			case <-g.closed:
			case <-ctx.Done():
			}
		}
	}
	if e.embedded != nil {
		e.embedded.Close()
	}
	e.mcPools.Close() //nolint:errcheck // shutting down
	luabind.CloseIdleSockets()
	e.accessLogs.closeAll()
	return e.errlog.Close()
}

func (e *Engine) closeListeners() {
	for key, o := range e.listeners {
		o.ln.Close()
		delete(e.listeners, key)
	}
}

func (e *Engine) writePid(cfg *Config) {
	if cfg.PidFile == "" || cfg.PidFile == "off" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(cfg.PidFile), 0o755); err == nil {
		os.WriteFile(cfg.PidFile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644) //nolint:errcheck // reported by -s when missing
	}
}

func (e *Engine) removePid(cfg *Config) {
	if p := cfg.PidFile; p != "" && !strings.EqualFold(p, "off") {
		os.Remove(p) //nolint:errcheck // best effort
	}
}
