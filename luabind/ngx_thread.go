package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// ngx.thread: light threads are Lua coroutines. luaserve's I/O (memcached,
// cosockets) blocks the request's goroutine instead of yielding, so a
// spawned thread runs eagerly until it finishes or calls coroutine.yield;
// wait resumes the threads it is given, in argument order, until one has
// finished. Programs that only spawn, then wait, behave as under OpenResty;
// the threads just do not overlap in time.

type lightThread struct {
	co      *lua.LState // also the handle Lua sees: type(t) == "thread"
	done    bool
	ok      bool
	results []lua.LValue
	killed  bool
	waited  bool
}

func (vm *VM) openNgxThread(ngx *lua.LTable) {
	L := vm.L
	t := L.CreateTable(0, 0)
	t.RawSetString("spawn", L.NewFunction(vm.threadSpawn))
	t.RawSetString("wait", L.NewFunction(vm.threadWait))
	t.RawSetString("kill", L.NewFunction(vm.threadKill))
	ngx.RawSetString("thread", t)
}

func (vm *VM) checkThread(L *lua.LState, n int, fname string) *lightThread {
	if co, ok := L.Get(n).(*lua.LState); ok {
		if th, ok := vm.threads[co]; ok {
			return th
		}
	}
	argError(L, n, fname, "thread expected")
	return nil
}

// threadSpawn is ngx.thread.spawn(func, ...).
func (vm *VM) threadSpawn(L *lua.LState) int {
	fn := L.CheckFunction(1)
	args := make([]lua.LValue, 0, L.GetTop()-1)
	for i := 2; i <= L.GetTop(); i++ {
		args = append(args, L.Get(i))
	}
	co := newThread(L)
	th := &lightThread{co: co}
	if vm.threads == nil {
		vm.threads = make(map[*lua.LState]*lightThread)
	}
	vm.threads[co] = th
	vm.resumeThread(L, th, coroutineBody(L, fn), args)
	L.Push(co)
	return 1
}

// resumeThread runs the thread until it finishes or yields.
func (vm *VM) resumeThread(L *lua.LState, th *lightThread, fn *lua.LFunction, args []lua.LValue) {
	st, err, values := L.Resume(th.co, fn, args...)
	switch st {
	case lua.ResumeOK:
		th.done, th.ok, th.results = true, true, values
	case lua.ResumeError:
		th.done, th.ok = true, false
		msg := lua.LValue(lua.LString("error"))
		if apiErr, ok := err.(*lua.ApiError); ok {
			msg = apiErr.Object
		} else if err != nil {
			msg = lua.LString(err.Error())
		}
		th.results = []lua.LValue{msg}
		if !vm.run.cancelled() {
			// lua-nginx-module logs a light thread's uncaught error.
			vm.logRequest(LogErr, vm.req, "lua user thread aborted: runtime error: "+msg.String())
		}
	}
}

// threadWait is ngx.thread.wait(t1, t2, ...): the first of the threads to
// finish answers true plus its results, or false plus its error.
func (vm *VM) threadWait(L *lua.LState) int {
	n := L.GetTop()
	if n == 0 {
		L.RaiseError("at least one thread should be specified")
	}
	ths := make([]*lightThread, n)
	for i := range ths {
		ths[i] = vm.checkThread(L, i+1, "wait")
		if ths[i].killed {
			return pushNilErr(L, "already killed")
		}
		if ths[i].waited {
			return pushNilErr(L, "already waited")
		}
	}
	for {
		for _, th := range ths {
			if th.done {
				th.waited = true
				L.Push(lua.LBool(th.ok))
				for _, v := range th.results {
					L.Push(v)
				}
				return 1 + len(th.results)
			}
		}
		progressed := false
		for _, th := range ths {
			if !th.done && L.Status(th.co) == "suspended" {
				vm.resumeThread(L, th, nil, nil)
				progressed = true
				if th.done {
					break
				}
			}
		}
		if !progressed {
			return pushNilErr(L, "no thread can make progress")
		}
	}
}

// threadKill is ngx.thread.kill(t).
func (vm *VM) threadKill(L *lua.LState) int {
	th := vm.checkThread(L, 1, "kill")
	if th.done {
		return pushNilErr(L, "already terminated")
	}
	if th.killed {
		return pushNilErr(L, "already waited or killed")
	}
	th.killed = true
	th.co.Close()
	L.Push(lua.LNumber(1))
	return 1
}
