package luabind

import (
	"errors"
	"sync"
	"time"
)

// Keepalive pools of ngx.socket.tcp connections.

// cosocketPools is the process-wide registry of cosocket keepalive pools,
// keyed by "host:port", "unix:/path" or connect's opts.pool. nginx keeps one
// set per worker; every VM of a luaserve process plays a worker and they
// share one process, so they share one set, which also survives reloads.
// Each pool holds at most its size of idle connections (the least recently
// used is closed to make room), an idle connection is closed once its
// setkeepalive timeout passes, and empty pools are dropped.
var cosocketPools = &socketPools{pools: make(map[string]*sockPool)}

// errTooManyWaiting is connect's error when the backlog queue is full.
var errTooManyWaiting = errors.New("too many waiting connect operations")

// sweepInterval is how often idle connections are checked for expiry; an
// expired one is also never handed out, whatever the sweeper's delay.
const sweepInterval = 250 * time.Millisecond

type socketPools struct {
	mu       sync.Mutex
	pools    map[string]*sockPool
	sweeping bool
}

// sockPool is one named pool. conns counts the live connections opened
// through it (idle or in use), which the backlog option bounds.
type sockPool struct {
	key     string
	size    int
	idle    []idleConn // oldest first
	conns   int
	waiters []chan struct{}
}

type idleConn struct {
	c       *sockConn
	expires time.Time // zero: never
}

// acquire returns an idle connection of the pool named key (most recently
// used first), or reserves a place for a new one (the caller dials, and
// calls release if that fails), or, when a backlog is given (>= 0) and the
// pool is at its size, a channel to wait on before trying again.
func (ps *socketPools) acquire(key string, size, backlog int) (c *sockConn, p *sockPool, wait chan struct{}, err error) {
	var expired []*sockConn
	now := time.Now()
	ps.mu.Lock()
	p = ps.pools[key]
	if p == nil {
		p = &sockPool{key: key, size: size}
		ps.pools[key] = p
	}
	for len(p.idle) > 0 {
		last := len(p.idle) - 1
		ic := p.idle[last]
		p.idle[last] = idleConn{}
		p.idle = p.idle[:last]
		if !ic.expires.IsZero() && now.After(ic.expires) {
			expired = append(expired, ic.c)
			continue
		}
		c = ic.c
		break
	}
	if c == nil {
		switch {
		case backlog >= 0 && p.conns >= p.size:
			if len(p.waiters) >= backlog {
				err = errTooManyWaiting
			} else {
				wait = make(chan struct{}, 1)
				p.waiters = append(p.waiters, wait)
			}
		default:
			p.conns++
		}
	}
	ps.mu.Unlock()
	for _, e := range expired {
		e.close()
	}
	return c, p, wait, err
}

// wait blocks until w is signalled (true) or the deadline passes (false).
func (ps *socketPools) wait(p *sockPool, w chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-w:
		return true
	case <-t.C:
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return false
		}
	}
	// Signalled as the timer fired: take the turn.
	return true
}

// wakeLocked lets the longest-waiting connect try again.
func (p *sockPool) wakeLocked() {
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = append(p.waiters[:0], p.waiters[1:]...)
		w <- struct{}{}
	}
}

// release forgets a connection of p that was closed (or never opened).
func (ps *socketPools) release(p *sockPool) {
	ps.mu.Lock()
	p.conns--
	p.wakeLocked()
	ps.mu.Unlock()
}

// put makes c idle in its pool for up to idle (0: no limit), closing the
// least recently used idle connection if the pool is full.
func (ps *socketPools) put(c *sockConn, idle time.Duration, size int) {
	p := c.pool
	var evicted *sockConn
	ic := idleConn{c: c}
	if idle > 0 {
		ic.expires = time.Now().Add(idle)
	}
	ps.mu.Lock()
	if p.size <= 0 {
		p.size = size
	}
	if len(p.idle) >= p.size {
		evicted = p.idle[0].c
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = ic
	} else {
		p.idle = append(p.idle, ic)
	}
	p.wakeLocked()
	if !ps.sweeping {
		ps.sweeping = true
		go ps.sweep()
	}
	ps.mu.Unlock()
	if evicted != nil {
		evicted.close()
	}
}

// sweep closes expired idle connections and drops unused pools; it runs
// while any connection is idle.
func (ps *socketPools) sweep() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for range t.C {
		var expired []*sockConn
		now := time.Now()
		idle := 0
		ps.mu.Lock()
		for key, p := range ps.pools {
			kept := p.idle[:0]
			for _, ic := range p.idle {
				if !ic.expires.IsZero() && now.After(ic.expires) {
					expired = append(expired, ic.c)
				} else {
					kept = append(kept, ic)
				}
			}
			for i := len(kept); i < len(p.idle); i++ {
				p.idle[i] = idleConn{}
			}
			p.idle = kept
			idle += len(kept)
			if len(kept) == 0 && p.conns == 0 && len(p.waiters) == 0 {
				delete(ps.pools, key)
			}
		}
		done := idle == 0
		if done {
			ps.sweeping = false
		}
		ps.mu.Unlock()
		for _, c := range expired {
			c.close()
		}
		if done {
			return
		}
	}
}

// Idle returns the number of idle connections in the pool named key (for
// tests and diagnostics).
func (ps *socketPools) Idle(key string) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.pools[key]; p != nil {
		return len(p.idle)
	}
	return 0
}

// CloseIdleSockets closes every idle connection of the cosocket keepalive
// pools and returns how many it closed. The engine calls it when the
// process shuts down; sockets in use are closed by their requests' end.
func CloseIdleSockets() int {
	return cosocketPools.closeIdle()
}

func (ps *socketPools) closeIdle() int {
	var idle []*sockConn
	ps.mu.Lock()
	for _, p := range ps.pools {
		for i, ic := range p.idle {
			idle = append(idle, ic.c)
			p.idle[i] = idleConn{}
		}
		p.idle = p.idle[:0]
	}
	ps.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	return len(idle)
}
