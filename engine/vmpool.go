package engine

import (
	"errors"
	"sync"
	"time"

	"luaserve/luabind"
)

// Pool defaults; lua_vm_pool_size overrides the bound.
const (
	DefaultVMPoolSize = 256
	// DefaultVMWait is how long a request waits for a VM when all are busy
	// before it is answered 503.
	DefaultVMWait = 5 * time.Second
	// vmIdleTrim: a pool that kept idle VMs for this long closes half of
	// them.
	vmIdleTrim = 30 * time.Second
)

// ErrPoolExhausted: every VM stayed busy for the whole wait.
var ErrPoolExhausted = errors.New("engine: no Lua VM available")

// vmPool is a bounded pool of VMs of one generation. VMs are created on
// demand up to max; a VM is used by one request at a time. Idle VMs are a
// stack: the most recently used one, whose memory is still in the CPU's
// caches, is handed out first, and the ones at the bottom are those the
// trimmer closes.
type vmPool struct {
	opts *luabind.Options
	max  int
	wait time.Duration

	mu      sync.Mutex
	idle    []*luabind.VM
	alive   int         // VMs created and not closed
	waiters []*vmWaiter // oldest first
	sweep   *time.Timer // runs sweepWaiters while there are waiters
	closed  bool
	minIdle int // fewest idle VMs seen since the last trim
	stop    chan struct{}
}

func newVMPool(opts *luabind.Options, max int, wait time.Duration) *vmPool {
	if max <= 0 {
		max = DefaultVMPoolSize
	}
	if wait <= 0 {
		wait = DefaultVMWait
	}
	p := &vmPool{
		opts: opts,
		max:  max,
		wait: wait,
		idle: make([]*luabind.VM, 0, max),
		stop: make(chan struct{}),
	}
	p.sweep = time.AfterFunc(time.Hour, p.sweepWaiters)
	p.sweep.Stop()
	p.minIdle = max
	go p.trimmer()
	return p
}

// get returns an idle VM, a new one while the bound allows, or waits up to
// the pool's wait for one to come back. The VM is locked for the caller. An
// idle VM that a timer callback is using is skipped, not waited for.
func (p *vmPool) get() (*luabind.VM, error) {
	var deadline time.Time
	for {
		p.mu.Lock()
		for i := len(p.idle) - 1; i >= 0; i-- {
			vm := p.idle[i]
			if !vm.TryLock() {
				continue
			}
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			if len(p.idle) < p.minIdle {
				p.minIdle = len(p.idle)
			}
			p.mu.Unlock()
			return vm, nil
		}
		if p.alive < p.max {
			p.alive++
			p.mu.Unlock()
			return p.create()
		}
		// All busy (or held by timers): queue to be woken by a put or a
		// freed slot, and try again.
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(p.wait)
		}
		if !now.Before(deadline) {
			p.mu.Unlock()
			return nil, ErrPoolExhausted
		}
		w := vmWaiters.Get().(*vmWaiter)
		w.deadline = deadline
		p.waiters = append(p.waiters, w)
		if len(p.waiters) == 1 {
			p.sweep.Reset(vmSweep)
		}
		p.mu.Unlock()
		<-w.wake
		vmWaiters.Put(w)
	}
}

// vmWaiter is a request waiting for a VM. Each is woken once, in the order
// they came, to try again: a VM came back or a slot was freed (the VM goes
// to whoever asks first, which keeps VMs busy, so a woken waiter may have
// to queue again), its wait is over, or the pool closed.
type vmWaiter struct {
	wake     chan struct{}
	deadline time.Time
}

var vmWaiters = sync.Pool{New: func() any { return &vmWaiter{wake: make(chan struct{}, 1)} }}

// vmSweep is how often, while requests wait, the pool ends the waits that
// are over and looks for idle VMs that timer callbacks freed without a put.
const vmSweep = 50 * time.Millisecond

// signal wakes the oldest waiter, if any; the caller holds mu.
func (p *vmPool) signal() {
	if len(p.waiters) == 0 {
		return
	}
	w := p.waiters[0]
	p.waiters[0] = nil
	p.waiters = p.waiters[1:]
	if len(p.waiters) == 0 {
		p.waiters = nil
		p.sweep.Stop()
	}
	w.wake <- struct{}{}
}

// sweepWaiters runs every vmSweep while there are waiters.
func (p *vmPool) sweepWaiters() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	keep := p.waiters[:0]
	for _, w := range p.waiters {
		if now.Before(w.deadline) {
			keep = append(keep, w)
		} else {
			w.wake <- struct{}{}
		}
	}
	clear(p.waiters[len(keep):])
	p.waiters = keep
	if len(p.idle) > 0 {
		p.signal()
	}
	if len(p.waiters) > 0 {
		p.sweep.Reset(vmSweep)
	}
}

func (p *vmPool) create() (*luabind.VM, error) {
	vm, err := luabind.NewVM(p.opts)
	if err != nil {
		p.mu.Lock()
		p.alive--
		p.signal()
		p.mu.Unlock()
		return nil, err
	}
	vm.Lock()
	return vm, nil
}

// put returns vm to the pool; a broken VM (Go panic, timeout) is closed and
// its slot freed instead.
func (p *vmPool) put(vm *luabind.VM) {
	vm.Unlock()
	p.mu.Lock()
	if vm.Broken() || p.closed {
		p.mu.Unlock()
		p.discard(vm)
		return
	}
	p.idle = append(p.idle, vm)
	p.signal()
	p.mu.Unlock()
}

// discard closes vm and frees its slot.
func (p *vmPool) discard(vm *luabind.VM) {
	vm.Close()
	p.mu.Lock()
	p.alive--
	p.signal()
	p.mu.Unlock()
}

// trimmer closes half of the VMs that stayed idle for a whole interval,
// oldest first, keeping those with pending timers (their timers would fire
// prematurely).
func (p *vmPool) trimmer() {
	t := time.NewTicker(vmIdleTrim)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		surplus := p.minIdle / 2
		var out []*luabind.VM
		keep := p.idle[:0]
		for _, vm := range p.idle {
			if surplus > 0 && !vm.HasTimers() {
				out = append(out, vm)
				surplus--
				continue
			}
			keep = append(keep, vm)
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		p.minIdle = len(p.idle)
		p.mu.Unlock()
		for _, vm := range out {
			p.discard(vm)
		}
	}
}

// close closes idle VMs now and busy ones as they come back.
func (p *vmPool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	for len(p.waiters) > 0 {
		p.signal()
	}
	p.mu.Unlock()
	close(p.stop)
	for _, vm := range idle {
		p.discard(vm)
	}
}
