package engine

import (
	"errors"
	"sync"
	"sync/atomic"
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
// demand up to max; a VM is used by one request at a time.
type vmPool struct {
	opts *luabind.Options
	idle chan *luabind.VM
	// slots holds one token per VM that may still be created.
	slots chan struct{}
	wait  time.Duration

	mu      sync.Mutex
	closed  bool
	minIdle atomic.Int64 // fewest idle VMs seen since the last trim
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
		opts:  opts,
		idle:  make(chan *luabind.VM, max),
		slots: make(chan struct{}, max),
		wait:  wait,
		stop:  make(chan struct{}),
	}
	for i := 0; i < max; i++ {
		p.slots <- struct{}{}
	}
	go p.trimmer()
	return p
}

// get returns an idle VM, a new one while the bound allows, or waits up to
// the pool's wait for one to come back. The VM is locked for the caller. An
// idle VM that a timer callback is using is skipped, not waited for.
func (p *vmPool) get() (*luabind.VM, error) {
	for n := len(p.idle); n > 0; n-- {
		select {
		case vm := <-p.idle:
			if vm.TryLock() {
				p.noteIdle()
				return vm, nil
			}
			p.idle <- vm
		default:
			n = 0
		}
	}
	select {
	case <-p.slots:
		return p.create()
	default:
	}
	t := time.NewTimer(p.wait)
	defer t.Stop()
	for {
		select {
		case vm := <-p.idle:
			// Out of the channel it is ours; if a timer callback holds
			// it, wait for that rather than spin.
			vm.Lock()
			return vm, nil
		case <-p.slots:
			return p.create()
		case <-t.C:
			return nil, ErrPoolExhausted
		}
	}
}

func (p *vmPool) noteIdle() {
	n := int64(len(p.idle))
	if n < p.minIdle.Load() {
		p.minIdle.Store(n)
	}
}

func (p *vmPool) create() (*luabind.VM, error) {
	vm, err := luabind.NewVM(p.opts)
	if err != nil {
		p.slots <- struct{}{}
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
	closed := p.closed
	p.mu.Unlock()
	if vm.Broken() || closed {
		p.discard(vm)
		return
	}
	p.idle <- vm
}

func (p *vmPool) discard(vm *luabind.VM) {
	vm.Close()
	p.slots <- struct{}{}
}

// trimmer closes half of the VMs that stayed idle for a whole interval.
func (p *vmPool) trimmer() {
	t := time.NewTicker(vmIdleTrim)
	defer t.Stop()
	p.minIdle.Store(int64(cap(p.idle)))
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			surplus := p.minIdle.Load() / 2
			for i := int64(0); i < surplus; i++ {
				select {
				case vm := <-p.idle:
					if vm.HasTimers() {
						p.idle <- vm // its timers would fire prematurely
						continue
					}
					p.discard(vm)
				default:
				}
			}
			p.minIdle.Store(int64(len(p.idle)))
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
	p.mu.Unlock()
	close(p.stop)
	for {
		select {
		case vm := <-p.idle:
			p.discard(vm)
		default:
			return
		}
	}
}
