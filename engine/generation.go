package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"luaserve/luabind"
)

// generation is everything one loaded config serves with: the config, its
// router, its compiled chunks and its VM pool. Requests hold a reference
// while they run; the engine drops its own on swap, and the last holder
// closes the pool.
type generation struct {
	id     int64
	cfg    *Config
	router *Router
	pool   *vmPool
	engine *Engine

	// userVars indexes every variable a `set` declares.
	userVars map[string]int
	// logs maps a location's access_log path to its shared writer.
	logs map[string]*accessLog
	// sockets holds each location's lua_socket_* settings as luabind sees
	// them, converted once at load.
	sockets map[*Location]*luabind.SocketSettings
	// files caches every Lua file the generation compiled (static and
	// variable *_by_lua_file paths, modules found by require): path →
	// proto. sources records what each file looked like when it was read,
	// for the hot-reload watcher.
	files   sync.Map
	srcMu   sync.Mutex
	sources map[string]fileStamp
	// noCache are the VM options for lua_code_cache off: a fresh VM per
	// request that compiles modules itself, as OpenResty does.
	noCache *luabind.Options

	refs    atomic.Int64
	closed  chan struct{}
	created time.Time
}

func (e *Engine) newGeneration(cfg *Config, id int64) (*generation, error) {
	g := &generation{
		id:       id,
		cfg:      cfg,
		router:   NewRouter(cfg.HTTP),
		engine:   e,
		userVars: make(map[string]int),
		logs:     make(map[string]*accessLog),
		sockets:  make(map[*Location]*luabind.SocketSettings),
		sources:  make(map[string]fileStamp),
		closed:   make(chan struct{}),
		created:  time.Now(),
	}
	g.refs.Store(1)
	for _, f := range cfg.Files {
		g.noteSource(f)
	}
	h := cfg.HTTP
	var initProto *lua.FunctionProto
	for _, c := range []*LuaChunk{h.InitByLua, h.InitWorkerByLua} {
		if c != nil && c.Path != nil {
			if path, static := c.Path.Static(); static {
				g.noteSource(path)
			}
		}
	}
	if h.InitByLua != nil {
		p, err := g.chunkProto(h.InitByLua)
		if err != nil {
			return nil, err
		}
		initProto = p
	}
	for _, srv := range h.Servers {
		if err := g.prepare(srv.Loc); err != nil {
			return nil, err
		}
		for _, l := range srv.Locations {
			if err := g.walk(l); err != nil {
				return nil, err
			}
		}
		for _, l := range srv.Named {
			if err := g.walk(l); err != nil {
				return nil, err
			}
		}
	}
	opts := &luabind.Options{
		PackagePath: h.LuaPackagePath,
		Prefix:      cfg.Prefix,
		Logger:      e.errlog,
		Exiting:     e.exiting.Load,
		SharedDict:  e.sharedDict,
		Pools:       &e.mcPools,
		Preload:     e.opts.Preload,
		Compile:     g.compile,
		Timers:      &luabind.TimerCounts{},
		Env:         luaEnv(cfg.Env),
	}
	opts.Setup = func(vm *luabind.VM) error {
		if initProto == nil {
			return nil
		}
		vm.SetPhase(luabind.PhaseInit)
		defer vm.SetPhase(luabind.PhaseContent)
		if err := vm.Run(initProto, 0); err != nil {
			c := h.InitByLua
			return &ConfigError{File: c.File, Line: c.Line, Msg: "init_by_lua error: " + err.Error()}
		}
		return nil
	}
	noCache := *opts
	noCache.Compile = nil
	g.noCache = &noCache
	g.pool = newVMPool(opts, h.VMPoolSize, DefaultVMWait)
	// One VM now proves init_by_lua runs, so a broken one fails the load
	// (and a reload keeps the old generation) instead of every request.
	vm, err := g.pool.get()
	if err != nil {
		g.pool.close()
		return nil, err
	}
	// init_worker_by_lua runs once per generation, as once per nginx
	// worker; the timers it starts live in this VM.
	if c := h.InitWorkerByLua; c != nil {
		if err := g.runInitWorker(vm, c); err != nil {
			g.pool.put(vm)
			g.pool.close()
			return nil, err
		}
	}
	g.pool.put(vm)
	return g, nil
}

// walk prepares a location and its nested ones.
func (g *generation) walk(l *Location) error {
	if err := g.prepare(l); err != nil {
		return err
	}
	for _, n := range l.Locations {
		if err := g.walk(n); err != nil {
			return err
		}
	}
	return nil
}

// prepare compiles a location's static file chunks, indexes its variables
// and opens its access log.
func (g *generation) prepare(l *Location) error {
	for _, s := range l.Sets {
		if _, ok := g.userVars[s.Name]; !ok {
			g.userVars[s.Name] = len(g.userVars)
		}
	}
	g.sockets[l] = socketSettings(l.Socket)
	for _, c := range []*LuaChunk{l.Rewrite, l.Access, l.Content, l.Log} {
		if c == nil || c.Path == nil {
			continue
		}
		if path, static := c.Path.Static(); static && c.Proto != nil {
			g.noteSource(path) // compiled by Load; watch it all the same
			continue
		}
		if c.Proto != nil {
			continue
		}
		if _, static := c.Path.Static(); !static {
			continue
		}
		if _, err := g.chunkProto(c); err != nil {
			return err
		}
	}
	if l.AccessLog != nil {
		if _, ok := g.logs[l.AccessLog.Path]; !ok {
			a, err := g.engine.accessLogs.get(l.AccessLog.Path)
			if err != nil {
				return &ConfigError{File: l.File, Line: l.Line, Msg: fmt.Sprintf("open() %q failed (%v)", l.AccessLog.Path, err)}
			}
			g.logs[l.AccessLog.Path] = a
		}
	}
	return nil
}

// chunkProto returns the compiled chunk: inline ones are compiled by Load;
// static file paths are compiled here once (per request when
// lua_code_cache is off, which callers handle).
func (g *generation) chunkProto(c *LuaChunk) (*lua.FunctionProto, error) {
	if c.Proto != nil {
		return c.Proto, nil
	}
	path, _ := c.Path.Static()
	p, err := g.compile(path)
	if err != nil {
		return nil, &ConfigError{File: c.File, Line: c.Line, Msg: err.Error()}
	}
	c.Proto = p
	return p, nil
}

// compileFile compiles a Lua file with the "@path" chunk name Lua uses, so
// errors and tracebacks name the file.
func compileFile(path string) (*lua.FunctionProto, error) {
	src, err := readStill(path)
	if err != nil {
		// %w keeps fs.ErrNotExist visible: a missing file answers 404.
		return nil, fmt.Errorf("failed to load external Lua file %q: cannot open %s: %w", path, path, errors.Unwrap(err))
	}
	proto, err := luabind.CompileChunk(strings.NewReader(string(src)), "@"+path)
	if cerr := (*lua.CompileError)(nil); err != nil && !errors.As(err, &cerr) {
		return nil, fmt.Errorf("failed to load external Lua file %q: %v", path, err)
	}
	return proto, err
}

// fileProto returns the proto for a *_by_lua_file path resolved for a
// request: cached per generation unless lua_code_cache is off.
func (g *generation) fileProto(path string, cache bool) (*lua.FunctionProto, error) {
	if !cache {
		return compileFile(path)
	}
	return g.compile(path)
}

// compile returns the generation's proto for a Lua file, compiling it on
// first use and noting the file for the hot-reload watcher. Concurrent
// first uses may compile twice; the first stored proto wins.
func (g *generation) compile(path string) (*lua.FunctionProto, error) {
	if p, ok := g.files.Load(path); ok {
		return p.(*lua.FunctionProto), nil
	}
	g.noteSource(path) // before reading: a write racing the read triggers one more reload, never a missed one
	p, err := compileFile(path)
	if err != nil {
		return nil, err
	}
	actual, _ := g.files.LoadOrStore(path, p)
	return actual.(*lua.FunctionProto), nil
}

func (g *generation) noteSource(path string) {
	st := statFile(path)
	g.srcMu.Lock()
	if _, ok := g.sources[path]; !ok {
		g.sources[path] = st
	}
	g.srcMu.Unlock()
}

// sourceStamps returns a copy of the files the generation was built from.
func (g *generation) sourceStamps() map[string]fileStamp {
	g.srcMu.Lock()
	defer g.srcMu.Unlock()
	out := make(map[string]fileStamp, len(g.sources))
	for k, v := range g.sources {
		out[k] = v
	}
	return out
}

// tryAcquire takes a reference unless the generation already retired.
func (g *generation) tryAcquire() bool {
	for {
		n := g.refs.Load()
		if n <= 0 {
			return false
		}
		if g.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the VM pool.
func (g *generation) release() {
	if g.refs.Add(-1) == 0 {
		g.pool.close()
		close(g.closed)
	}
}

// socketSettings converts lua_socket_* settings for luabind; unset values
// take lua-nginx-module's defaults.
func socketSettings(ss SocketSettings) *luabind.SocketSettings {
	out := luabind.DefaultSocketSettings
	if ss.ConnectTimeout > 0 {
		out.ConnectTimeout = ss.ConnectTimeout
	}
	if ss.SendTimeout > 0 {
		out.SendTimeout = ss.SendTimeout
	}
	if ss.ReadTimeout > 0 {
		out.ReadTimeout = ss.ReadTimeout
	}
	if ss.PoolSize > 0 {
		out.PoolSize = ss.PoolSize
	}
	if ss.KeepaliveTimeout > 0 {
		out.KeepaliveTimeout = ss.KeepaliveTimeout
	}
	out.LogErrors = ss.LogErrors
	return &out
}

func (g *generation) runInitWorker(vm *luabind.VM, c *LuaChunk) error {
	proto, err := g.chunkProto(c)
	if err != nil {
		return err
	}
	vm.SetPhase(luabind.PhaseInitWorker)
	defer vm.SetPhase(luabind.PhaseContent)
	if err := vm.Run(proto, DefaultLuaRequestTimeout); err != nil {
		return &ConfigError{File: c.File, Line: c.Line, Msg: "init_worker_by_lua error: " + err.Error()}
	}
	vm.End()
	return nil
}

// luaEnv is the environment an nginx worker keeps: TZ and the variables
// `env` names (with their value, or the inherited one).
func luaEnv(vars []EnvVar) map[string]string {
	env := make(map[string]string)
	if tz, ok := os.LookupEnv("TZ"); ok {
		env["TZ"] = tz
	}
	for _, v := range vars {
		if v.HasValue {
			env[v.Name] = v.Value
		} else if val, ok := os.LookupEnv(v.Name); ok {
			env[v.Name] = val
		}
	}
	return env
}

// readStill reads path once it has not been modified for ReloadSettle and
// did not change while it was read, so a file being rewritten in place
// (truncate, then write) is never compiled half-written: hot reload makes
// reading a file just after a write the common case. An empty file is
// waited on for up to a second too: a writer descheduled between its
// truncate and its write looks exactly like that, and an empty module is
// almost never meant. After a second it reads what is there.
func readStill(path string) ([]byte, error) {
	deadline := time.Now().Add(time.Second)
	for {
		st := statFile(path)
		early := time.Now().Before(deadline)
		if age := time.Since(time.Unix(0, st.mtime)); !st.missing && early && (age < ReloadSettle || st.size == 0) {
			time.Sleep(max(ReloadSettle-age, ReloadSettle/4))
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil || statFile(path) == st || !early {
			return src, err
		}
		// Changed while being read: wait for the writer to finish.
	}
}
