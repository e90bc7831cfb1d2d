package luabind

import (
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Timers, as lua-nginx-module's ngx.timer.*: a callback runs in the VM that
// created it — as it runs in the worker that created it in nginx — once
// that VM is free, with premature = false; when the VM closes (a reload
// retired its generation, or the server stops) pending timers run at once
// with premature = true. Each run has the timer deadline (TimerTimeout).

// Timer defaults, lua-nginx-module's lua_max_pending_timers and
// lua_max_running_timers.
const (
	DefaultMaxPendingTimers = 1024
	DefaultMaxRunningTimers = 256
	// TimerTimeout bounds one timer callback run, so a runaway callback
	// cannot hold its VM forever.
	TimerTimeout = 60 * time.Second
)

// TimerCounts are shared by the VMs of one generation (an nginx "worker"):
// ngx.timer.pending_count and running_count read them.
type TimerCounts struct {
	Pending, Running atomic.Int64
}

type luaTimer struct {
	vm    *VM
	fn    *lua.LFunction
	args  []lua.LValue
	every time.Duration
	t     *time.Timer
}

// timerState is the VM's side of its timers.
type timerState struct {
	mu      sync.Mutex
	pending map[*luaTimer]struct{}
	closing bool
}

func (vm *VM) openNgxTimer(ngx *lua.LTable) {
	L := vm.L
	t := L.CreateTable(0, 0)
	t.RawSetString("at", L.NewFunction(func(L *lua.LState) int { return vm.timerAdd(L, false) }))
	t.RawSetString("every", L.NewFunction(func(L *lua.LState) int { return vm.timerAdd(L, true) }))
	t.RawSetString("running_count", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(vm.timerCounts().Running.Load()))
		return 1
	}))
	t.RawSetString("pending_count", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(vm.timerCounts().Pending.Load()))
		return 1
	}))
	ngx.RawSetString("timer", t)
}

func (vm *VM) timerCounts() *TimerCounts {
	if vm.opts.Timers == nil {
		vm.opts.Timers = &TimerCounts{}
	}
	return vm.opts.Timers
}

// timerAdd is ngx.timer.at(delay, callback, ...) and ngx.timer.every.
func (vm *VM) timerAdd(L *lua.LState, every bool) int {
	fname := "at"
	if every {
		fname = "every"
	}
	delay := float64(L.CheckNumber(1))
	fn := L.CheckFunction(2)
	if delay < 0 || every && delay == 0 {
		argError(L, 1, fname, "invalid delay")
	}
	counts := vm.timerCounts()
	if vm.exitingNow() {
		return pushNilErr(L, "process exiting")
	}
	if counts.Pending.Load() >= DefaultMaxPendingTimers {
		return pushNilErr(L, "too many pending timers")
	}
	var args []lua.LValue
	for i := 3; i <= L.GetTop(); i++ {
		args = append(args, L.Get(i))
	}
	d := time.Duration(delay * float64(time.Second))
	tm := &luaTimer{vm: vm, fn: fn, args: args}
	if every {
		tm.every = d
	}
	ts := &vm.timers
	ts.mu.Lock()
	if ts.closing {
		ts.mu.Unlock()
		return pushNilErr(L, "process exiting")
	}
	if ts.pending == nil {
		ts.pending = make(map[*luaTimer]struct{})
	}
	ts.pending[tm] = struct{}{}
	counts.Pending.Add(1)
	tm.t = time.AfterFunc(d, tm.fire)
	ts.mu.Unlock()
	L.Push(lua.LNumber(1))
	return 1
}

func (vm *VM) exitingNow() bool { return vm.opts.Exiting != nil && vm.opts.Exiting() }

// HasTimers reports whether timers are pending on the VM; such a VM is
// not trimmed from an idle pool.
func (vm *VM) HasTimers() bool {
	vm.timers.mu.Lock()
	defer vm.timers.mu.Unlock()
	return len(vm.timers.pending) > 0
}

// fire runs the callback once its VM is free.
func (tm *luaTimer) fire() {
	vm := tm.vm
	vm.Lock()
	defer vm.Unlock()
	ts := &vm.timers
	ts.mu.Lock()
	if _, ok := ts.pending[tm]; !ok || ts.closing {
		ts.mu.Unlock()
		return // closing: Close runs it prematurely
	}
	if tm.every == 0 {
		delete(ts.pending, tm)
		vm.timerCounts().Pending.Add(-1)
	}
	ts.mu.Unlock()
	vm.runTimer(tm, false)
	if tm.every > 0 {
		ts.mu.Lock()
		if _, ok := ts.pending[tm]; ok && !ts.closing {
			tm.t.Reset(tm.every)
		}
		ts.mu.Unlock()
	}
}

// runTimer calls the callback in the VM (held by the caller).
func (vm *VM) runTimer(tm *luaTimer, premature bool) {
	counts := vm.timerCounts()
	counts.Running.Add(1)
	defer counts.Running.Add(-1)
	prevReq, prevPhase := vm.req, vm.phase
	vm.req, vm.phase = nil, PhaseTimer
	defer func() { vm.req, vm.phase = prevReq, prevPhase }()
	L := vm.L
	fn := L.NewFunction(func(L *lua.LState) int {
		L.Push(tm.fn)
		L.Push(lua.LBool(premature))
		for _, a := range tm.args {
			L.Push(a)
		}
		L.Call(1+len(tm.args), 0)
		return 0
	})
	if err := vm.Call(fn, TimerTimeout); err != nil {
		msg := "lua entry thread aborted: runtime error: " + err.Error()
		if lerr, ok := err.(*LuaError); ok && lerr.Traceback != "" {
			msg += "\n" + lerr.Traceback
		}
		vm.logRequest(LogErr, nil, msg+", context: ngx.timer")
	}
	vm.End()
}

// closeTimers runs every pending timer prematurely (the VM is closing) and
// stops them. The caller holds the VM.
func (vm *VM) closeTimers() {
	ts := &vm.timers
	ts.mu.Lock()
	ts.closing = true
	pending := make([]*luaTimer, 0, len(ts.pending))
	for tm := range ts.pending {
		tm.t.Stop()
		pending = append(pending, tm)
	}
	ts.pending = nil
	ts.mu.Unlock()
	for _, tm := range pending {
		vm.timerCounts().Pending.Add(-1)
		vm.runTimer(tm, true)
	}
}
