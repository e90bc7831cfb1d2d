package luabind

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"luaserve/memcached"
)

// Sentinel errors of a chunk run.
var (
	// ErrTimeout: the request's Lua deadline passed (lua_request_timeout).
	ErrTimeout = errors.New("lua: request timed out")
	// errExit cancels the run context when ngx.exit/redirect/exec ends a phase.
	errExit = errors.New("lua: exit")
)

// LuaError is a Lua runtime error with its traceback, formatted as
// lua-nginx-module logs it.
type LuaError struct {
	Msg       string
	Traceback string
}

func (e *LuaError) Error() string { return e.Msg }

// Logger receives log lines written outside a request (init_by_lua, timers)
// and inside one (ngx.log, print, socket errors).
type Logger interface {
	Log(level int, r *Request, msg string)
}

// Options configure a new VM. They are shared by every VM of a config
// generation and must not change after the first NewVM.
type Options struct {
	// PackagePath is package.path (lua_package_path, already resolved).
	PackagePath string
	// Prefix is ngx.config.prefix().
	Prefix string
	Logger Logger
	// Preload registers extra modules (name → loader) in every VM.
	Preload map[string]lua.LGFunction
	// Setup runs once per new VM after the libraries are open; the engine
	// uses it for the shared dicts, memcached modules and init_by_lua.
	Setup func(vm *VM) error
	// Exiting answers ngx.worker.exiting().
	Exiting func() bool
	// SharedDict returns the process-wide dict of a lua_shared_dict, or nil.
	SharedDict func(name string) *SharedDict
	// Clock is the cached time behind ngx.now and friends (default: one
	// process-wide clock the engine sets per request, see SetClock).
	Clock Clock
	// Compile, when set, compiles the Lua files require finds on
	// package.path (see installSearcher); nil keeps gopher-lua's loader,
	// which reads and compiles the file in each VM.
	Compile func(path string) (*lua.FunctionProto, error)
	// Env is the environment Lua's os.getenv sees: nginx removes every
	// inherited variable but TZ and those an `env` directive names. Nil
	// leaves os.getenv as it is.
	Env map[string]string
	// Timers counts the pending and running ngx.timer callbacks of every VM
	// built with these options (one generation, nginx's worker).
	Timers *TimerCounts
	// Pools are the process-wide memcached connection pools every VM's
	// memcached modules draw from; the engine owns them, so they survive
	// reloads. Nil means a private set (tests).
	Pools *memcached.Pools
}

// defaultClock is the process-wide cached time, as nginx's is per worker.
var defaultClock = NewCachedClock()

// SetClock sets the default clock to now, which the caller just read: the
// engine reads the time once per request, as nginx updates its time once per
// event-loop turn.
func SetClock(now time.Time) { defaultClock.Set(now) }

// MemcachedPools returns the pools the memcached modules share.
func (vm *VM) MemcachedPools() *memcached.Pools {
	if vm.opts.Pools == nil {
		vm.opts.Pools = &memcached.Pools{}
	}
	return vm.opts.Pools
}

func (o *Options) clock() Clock {
	if o.Clock != nil {
		return o.Clock
	}
	return defaultClock
}

// VM is one Lua state: the analog of an nginx worker. It runs one request at
// a time; module-level Lua state lives as long as the VM.
type VM struct {
	L    *lua.LState
	opts *Options
	req  *Request

	run     runContext
	timer   *time.Timer
	errfunc *lua.LFunction

	fns map[*lua.FunctionProto]*lua.LFunction
	// env is the globals table of handler chunks: lua-nginx-module gives each
	// request its own, falling back to _G, so a handler's stray global does
	// not leak into the next request.
	env     *lua.LTable
	envMeta *lua.LTable

	ngx    *lua.LTable
	buf    []byte // scratch for formatting
	broken bool
	// phase is what ngx.get_phase answers outside a request (init,
	// init_worker, timer).
	phase Phase

	// Closers run when the current request ends (connections a handler left
	// checked out, cosockets left open).
	closers []func()

	// mu gives one user at a time the VM: a request (from pool get to put)
	// or a timer callback.
	mu     sync.Mutex
	timers timerState
	// threads are the request's ngx.thread light threads, by coroutine.
	threads map[*lua.LState]*lightThread
}

// NewVM creates a VM with the standard libraries, the ngx API and the
// preloaded modules, then runs opts.Setup.
func NewVM(opts *Options) (*VM, error) {
	L := lua.NewState(lua.Options{
		SkipOpenLibs: true,
		// The data stack grows on demand (gopher-lua's default is fixed
		// at 5120 slots, so table.concat of a 20,000-element table, as
		// lua-resty-redis does for a big command, overflowed it), in big
		// steps (growth copies the stack, and runs in Go code that no
		// deadline interrupts), up to 4× LuaJIT's 65,500-slot limit.
		RegistrySize:     1 << 10, // 16 KB per VM (and per light thread)
		RegistryGrowStep: 16 << 10,
		RegistryMaxSize:  256 << 10,
	})
	vm := &VM{L: L, opts: opts, fns: make(map[*lua.FunctionProto]*lua.LFunction)}
	vm.run.reset()
	vm.timer = time.AfterFunc(time.Hour, vm.run.expire)
	vm.timer.Stop()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.OsLibName, lua.OpenOs},
		{lua.IoLibName, lua.OpenIo},
		{lua.DebugLibName, lua.OpenDebug},
		{lua.CoroutineLibName, lua.OpenCoroutine},
	} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	vm.luajitCompat()
	pkg := L.GetGlobal("package").(*lua.LTable)
	if opts.PackagePath != "" {
		pkg.RawSetString("path", lua.LString(opts.PackagePath))
	}
	pkg.RawSetString("cpath", lua.LString(""))
	vm.errfunc = L.NewFunction(vm.traceback)
	vm.envMeta = L.CreateTable(0, 0)
	vm.envMeta.RawSetString("__index", L.Get(lua.GlobalsIndex))
	vm.newEnv()
	vm.openNgx()
	vm.openModules()
	vm.installSearcher()
	if opts.Env != nil {
		env := opts.Env
		os := L.GetGlobal("os").(*lua.LTable)
		os.RawSetString("getenv", L.NewFunction(func(L *lua.LState) int {
			if v, ok := env[L.CheckString(1)]; ok {
				L.Push(lua.LString(v))
			} else {
				L.Push(lua.LNil)
			}
			return 1
		}))
	}
	for name, loader := range opts.Preload {
		L.PreloadModule(name, loader)
	}
	if opts.Setup != nil {
		if err := opts.Setup(vm); err != nil {
			L.Close()
			return nil, err
		}
	}
	compactTables(L)
	return vm, nil
}

// luajitCompat makes the base library answer as LuaJIT's does where
// OpenResty code can see it: tostring of numbers ("%.14g", inf, nan),
// math.huge (gopher-lua sets it to the largest float), table.concat, the
// loaders (compiled by CompileChunk) and runtime error messages caught by
// pcall, xpcall and coroutines (see luajit_errors.go).
func (vm *VM) luajitCompat() {
	L := vm.L
	orig := L.GetGlobal("tostring")
	L.SetGlobal("tostring", L.NewFunction(func(L *lua.LState) int {
		if n, ok := L.Get(1).(lua.LNumber); ok && L.GetTop() >= 1 {
			L.Push(lua.LString(appendLuaJITNumber(nil, float64(n))))
			return 1
		}
		v := L.CheckAny(1)
		L.Push(orig)
		L.Push(v)
		L.Call(1, 1)
		return 1
	}))
	L.GetGlobal("math").(*lua.LTable).RawSetString("huge", lua.LNumber(math.Inf(1)))
	L.SetGlobal("error", errorFunction())
	str := L.GetGlobal("string").(*lua.LTable)
	format := str.RawGetString("format")
	str.RawSetString("format", L.NewFunction(func(L *lua.LState) int {
		return luajitFormat(L, format)
	}))
	L.GetGlobal("table").(*lua.LTable).RawSetString("concat", L.NewFunction(luajitTableConcat))
	L.SetGlobal("pcall", L.NewFunction(luajitPCall))
	L.SetGlobal("xpcall", L.NewFunction(luajitXPCall))
	debug := L.GetGlobal("debug").(*lua.LTable)
	debug.RawSetString("traceback", L.NewFunction(luajitDebugTraceback(debug.RawGetString("traceback").(*lua.LFunction))))
	luajitCoroutines(L)
	luajitLoaders(L)
}

// luaError is Lua 5.1's error(message [, level]): a string message gets the
// position of the function at level (1: error's caller) when that is a Lua
// function — none for pcall(error, "x"), as in LuaJIT, where gopher-lua's
// skips Go frames — and error() raises nil rather than complaining.
func luaError(L *lua.LState) int {
	obj := L.Get(1)
	level := L.OptInt(2, 1)
	if msg, ok := obj.(lua.LString); ok && level > 0 {
		if dbg, ok := stackLevel(L, level); ok {
			if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil && dbg.CurrentLine > 0 {
				obj = lua.LString(shortSource(dbg.Source) + ":" + strconv.Itoa(dbg.CurrentLine) + ": " + string(msg))
			}
		}
	}
	L.Error(obj, 0)
	return 0
}

// luajitFormat is string.format with LuaJIT's %q; everything else is
// gopher-lua's format, which %q arguments reach pre-quoted as %s.
func luajitFormat(L *lua.LState, format lua.LValue) int {
	f := L.CheckString(1)
	if !strings.Contains(f, "%q") {
		n := L.GetTop()
		L.Push(format)
		for i := 1; i <= n; i++ {
			L.Push(L.Get(i))
		}
		L.Call(n, 1)
		return 1
	}
	var out strings.Builder
	args := []lua.LValue{}
	arg := 2
	for i := 0; i < len(f); i++ {
		c := f[i]
		out.WriteByte(c)
		if c != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			out.WriteByte('%')
			continue
		}
		start := i
		for i < len(f) && strings.IndexByte("-+ #0123456789.", f[i]) >= 0 {
			i++
		}
		if i >= len(f) {
			break
		}
		if f[i] == 'q' {
			out.WriteByte('s')
			args = append(args, lua.LString(quoteLuaJIT(L.CheckString(arg))))
		} else {
			out.WriteString(f[start : i+1])
			args = append(args, L.Get(arg))
		}
		arg++
	}
	L.Push(format)
	L.Push(lua.LString(out.String()))
	for _, a := range args {
		L.Push(a)
	}
	L.Call(1+len(args), 1)
	return 1
}

// quoteLuaJIT is LuaJIT's %q: backslash before '"', '\\' and newline,
// control bytes as decimal escapes (three digits when a digit follows).
func quoteLuaJIT(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\' || c == '\n':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\')
			if c >= 100 || i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
				b = append(b, '0'+c/100, '0'+c/10%10, '0'+c%10)
			} else {
				b = strconv.AppendInt(b, int64(c), 10)
			}
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

// Close runs the VM's pending timers prematurely, then releases its Lua
// state. It waits for a timer callback that is running; the caller must not
// hold the VM.
func (vm *VM) Close() {
	vm.Lock()
	defer vm.Unlock()
	vm.closeTimers()
	vm.run.mu.Lock()
	vm.timer.Stop()
	vm.run.armed = false
	vm.run.mu.Unlock()
	vm.L.Close()
}

// Lock takes the VM for one user (a request or a timer callback).
func (vm *VM) Lock() { vm.mu.Lock() }

// TryLock takes the VM unless a timer callback is using it.
func (vm *VM) TryLock() bool { return vm.mu.TryLock() }

// Unlock releases the VM.
func (vm *VM) Unlock() { vm.mu.Unlock() }

// Broken reports whether the VM saw a Go panic or a timeout and must be
// discarded rather than reused.
func (vm *VM) Broken() bool { return vm.broken }

// Request returns the request the VM is serving, or nil.
func (vm *VM) Request() *Request { return vm.req }

// Options returns the options the VM was built with.
func (vm *VM) Options() *Options { return vm.opts }

// OnRequestEnd registers fn to run when the current request ends.
func (vm *VM) OnRequestEnd(fn func()) { vm.closers = append(vm.closers, fn) }

// SetPhase sets the phase reported outside a request (init_by_lua runs
// under PhaseInit, timers under PhaseTimer).
func (vm *VM) SetPhase(p Phase) { vm.phase = p }

// Bind makes r the request the VM serves; End unbinds it.
func (vm *VM) Bind(r *Request) { vm.req = r }

// End finishes the current request: runs the registered closers and gives
// handler chunks a fresh globals table if the request wrote one.
func (vm *VM) End() {
	for i, fn := range vm.closers {
		fn()
		vm.closers[i] = nil
	}
	vm.closers = vm.closers[:0]
	if k, _ := vm.env.Next(lua.LNil); k != lua.LNil {
		vm.newEnv()
	}
	clear(vm.threads)
	vm.req = nil
}

func (vm *VM) newEnv() {
	vm.env = vm.L.CreateTable(0, 0)
	vm.L.SetMetatable(vm.env, vm.envMeta)
}

// Function returns the VM's function for a compiled chunk, creating it from
// the shared proto on first use.
func (vm *VM) Function(proto *lua.FunctionProto) *lua.LFunction {
	fn, ok := vm.fns[proto]
	if !ok {
		fn = vm.L.NewFunctionFromProto(proto)
		vm.fns[proto] = fn
	}
	fn.Env = vm.env
	return fn
}

// Run runs a compiled chunk as a phase handler of the bound request with a
// deadline (0 = none). It returns nil when the chunk finished or called
// ngx.exit (see Request.Exited), ErrTimeout, or a *LuaError.
func (vm *VM) Run(proto *lua.FunctionProto, timeout time.Duration) error {
	return vm.Call(vm.Function(proto), timeout)
}

// Call runs fn (no arguments, no results) like Run.
func (vm *VM) Call(fn *lua.LFunction, timeout time.Duration) (err error) {
	L := vm.L
	defer func() {
		// Last resort: some gopher-lua failures (a registry overflow in
		// the error path) escape PCall. The server must not go down; the
		// VM is in an unknown state, so it is discarded.
		if r := recover(); r != nil {
			vm.broken = true
			L.RemoveContext()
			vm.run.finish(true)
			err = &LuaError{Msg: fmt.Sprint(r)}
		}
	}()
	vm.run.start(timeout, vm.timer)
	L.SetContext(&vm.run)
	L.Push(fn)
	err = L.PCall(0, 0, vm.errfunc)
	L.RemoveContext()
	cause := vm.run.finish(err != nil)
	L.SetTop(0)
	if err == nil {
		return nil
	}
	if cause == errExit {
		return nil
	}
	if cause == ErrTimeout {
		// The chunk was stopped anywhere, perhaps inside a module's
		// initialisation: its state cannot be trusted any more.
		vm.broken = true
		return ErrTimeout
	}
	var msg string
	if apiErr, ok := err.(*lua.ApiError); ok {
		msg = apiErr.Object.String()
	} else {
		msg = err.Error()
	}
	lerr := &LuaError{Msg: msg}
	if i := strings.Index(msg, "\nstack traceback:"); i >= 0 {
		lerr.Msg, lerr.Traceback = msg[:i], msg[i+1:]
	}
	return lerr
}

// traceback is the error handler of every run: it appends a traceback to
// real errors, and stays cheap for ngx.exit, which ends a run through the
// error path too.
func (vm *VM) traceback(L *lua.LState) int {
	if vm.run.cancelled() {
		return 1
	}
	if panickedInGo() {
		// The Go side may have failed half-way through changing state the
		// VM relies on: finish this request, then discard the VM.
		vm.broken = true
	}
	v := L.Get(1)
	msg, ok := v.(lua.LString)
	if ok {
		msg = lua.LString(luajitMessage(L, 1, string(msg)))
	} else {
		if v == lua.LNil {
			msg = "nil"
		} else {
			msg = lua.LString(L.ToStringMeta(v).String())
		}
	}
	var b strings.Builder
	b.WriteString(string(msg))
	b.WriteString("\nstack traceback:\ncoroutine 0:")
	for level := 1; level < 24; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			break
		}
		if _, err := L.GetInfo("Sln", dbg, lua.LNil); err != nil {
			break
		}
		if internalFrame(L, dbg) {
			continue
		}
		b.WriteString("\n\t")
		if dbg.What == "G" {
			b.WriteString("[C]: in ")
		} else {
			fmt.Fprintf(&b, "%s:%d: in ", dbg.Source, dbg.CurrentLine)
		}
		switch {
		case dbg.What == "main":
			b.WriteString("main chunk")
		case dbg.Name != "":
			fmt.Fprintf(&b, "function '%s'", dbg.Name)
		default:
			b.WriteString("function <anonymous>")
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// panickedInGo reports whether the error being handled is a Go panic (a bug
// in Go code reached from Lua) rather than a Lua error. gopher-lua raises
// Lua errors with panic() from its own functions; the frame just outside
// runtime.gopanic tells which it was. Only called on the error path.
func panickedInGo() bool {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	afterPanic := false
	for {
		f, more := frames.Next()
		if afterPanic {
			return !strings.HasPrefix(f.Function, "github.com/yuin/gopher-lua.")
		}
		if f.Function == "runtime.gopanic" {
			afterPanic = true
		}
		if !more {
			return false
		}
	}
}

// Exit ends the running chunk after ngx.exit and friends: the run context is
// cancelled, so even a pcall around the call cannot resume the chunk.
func (vm *VM) Exit(code int) {
	r := vm.req
	r.Exited = true
	r.ExitCode = code
	vm.run.cancel(errExit)
	vm.L.RaiseError("exit")
}

// runContext is the VM's context.Context for one run. gopher-lua polls Done
// before every instruction, so the channel is only replaced after it was
// closed. The deadline timer stays armed across runs: it is reset only when
// a run needs it earlier than it will fire, and when it fires before the
// current run's deadline it re-arms itself for the rest — so a VM serving
// requests with the same lua_request_timeout resets its timer about once per
// timeout, not once per run.
type runContext struct {
	mu       sync.Mutex
	done     chan struct{}
	closed   bool
	err      error
	deadline time.Time
	running  bool
	timer    *time.Timer
	armed    bool
	fireAt   time.Time
}

func (c *runContext) reset() {
	c.done = make(chan struct{})
	c.closed = false
	c.err = nil
}

func (c *runContext) start(timeout time.Duration, timer *time.Timer) {
	c.mu.Lock()
	if c.closed {
		c.reset()
	}
	c.running = true
	c.deadline = time.Time{}
	if timeout > 0 {
		c.timer = timer
		c.deadline = time.Now().Add(timeout)
		if !c.armed || c.deadline.Before(c.fireAt) {
			c.armed, c.fireAt = true, c.deadline
			timer.Reset(timeout)
		}
	}
	c.mu.Unlock()
}

// finish ends a run and returns why it was cancelled, if it was. A run that
// failed after its deadline timed out even if the timer had not fired yet:
// I/O bound by the same deadline may have failed first.
func (c *runContext) finish(failed bool) error {
	c.mu.Lock()
	c.running = false
	err := c.err
	if err == nil && failed && !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
		err = ErrTimeout
	}
	c.mu.Unlock()
	return err
}

func (c *runContext) cancel(err error) {
	c.mu.Lock()
	if !c.closed {
		c.err = err
		c.closed = true
		close(c.done)
	}
	c.mu.Unlock()
}

func (c *runContext) cancelled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// expire is the timer callback (and what I/O that hit the request deadline
// calls): it cancels a run past its deadline, or re-arms the timer for the
// deadline of the run going on now.
func (c *runContext) expire() {
	c.mu.Lock()
	now := time.Now()
	fire := false
	switch {
	case !c.running || c.deadline.IsZero():
		c.armed = false
	case !now.Before(c.deadline):
		c.armed = false
		fire = !c.closed
	default:
		c.fireAt = c.deadline
		c.armed = true
		c.timer.Reset(c.deadline.Sub(now))
	}
	c.mu.Unlock()
	if fire {
		c.cancel(ErrTimeout)
	}
}

func (c *runContext) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, !c.deadline.IsZero()
}
func (c *runContext) Done() <-chan struct{} { return c.done }
func (c *runContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
func (c *runContext) Value(any) any { return nil }
