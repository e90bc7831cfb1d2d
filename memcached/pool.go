package memcached

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Pool keeps idle connections to one server for reuse, the way an OpenResty
// cosocket pool does: Get takes the most recently returned live connection
// (or dials), Put returns one with the caller's idle timeout and pool size,
// as set_keepalive(max_idle_ms, pool_size) does. Connections that are broken
// (see Resumable) are closed by Put, never pooled. Safe for concurrent use.
type Pool struct {
	addr string
	opts Options

	mu     sync.Mutex
	idle   []*Conn // most recently returned last
	maxAge []time.Duration
	closed bool

	mux atomic.Pointer[Mux] // the shared transport, made on first use
}

// NewPool returns an empty pool for addr; opts (may be nil) is used for every
// new connection.
func NewPool(addr string, opts *Options) *Pool {
	p := &Pool{addr: addr}
	if opts != nil {
		p.opts = *opts
	}
	return p
}

// Addr returns the server address the pool dials.
func (p *Pool) Addr() string { return p.addr }

// Get returns an idle connection whose idle time has not run out, counting
// the reuse, or dials a new one within ctx and the connect timeout.
func (p *Pool) Get(ctx context.Context) (*Conn, error) {
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c, age := p.idle[n-1], p.maxAge[n-1]
		p.idle[n-1] = nil
		p.idle, p.maxAge = p.idle[:n-1], p.maxAge[:n-1]
		if now.Sub(c.idleAt) > age {
			c.Close() //nolint:errcheck // expired: nothing to report
			continue
		}
		p.mu.Unlock()
		c.reused++
		return c, nil
	}
	p.mu.Unlock()
	c, err := Dial(ctx, p.addr, &p.opts)
	if err != nil {
		return nil, err
	}
	c.pool = p
	return c, nil
}

// Put returns c to the pool, to be closed after maxIdle unused (≤0:
// DefaultMaxIdle), keeping at most poolSize idle connections (≤0:
// DefaultPoolSize) — the oldest are closed first. A broken or closed c, one
// with unread responses, or one from another pool is closed instead.
func (p *Pool) Put(c *Conn, maxIdle time.Duration, poolSize int) {
	if c == nil {
		return
	}
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdle
	}
	if poolSize <= 0 {
		poolSize = DefaultPoolSize
	}
	if c.Broken() || c.pool != p || c.Flush() != nil || !c.quiet() {
		c.Close() //nolint:errcheck
		return
	}
	c.idleAt = time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close() //nolint:errcheck
		return
	}
	p.idle = append(p.idle, c)
	p.maxAge = append(p.maxAge, maxIdle)
	var evict []*Conn
	if over := len(p.idle) - poolSize; over > 0 {
		evict = append(evict, p.idle[:over]...)
		n := copy(p.idle, p.idle[over:])
		copy(p.maxAge, p.maxAge[over:])
		clear(p.idle[n:])
		p.idle, p.maxAge = p.idle[:n], p.maxAge[:n]
	}
	p.mu.Unlock()
	for _, e := range evict {
		e.Close() //nolint:errcheck
	}
}

// quiet reports whether nothing is waiting on c: no reply left unread (it
// would be taken for the next caller's) and no close from the server. It
// polls the socket without blocking. Under TLS only a close is detected,
// since the server may send session tickets unasked.
func (c *Conn) quiet() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	data, eof, ok := pollSocket(c.raw)
	if !ok {
		return true
	}
	return !eof && (!data || c.raw != c.nc)
}

// Idle returns the number of pooled connections (expired ones included until
// the next Get or Prune).
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Prune closes idle connections whose idle time has run out.
func (p *Pool) Prune() {
	now := time.Now()
	var dead []*Conn
	p.mu.Lock()
	n := 0
	for i, c := range p.idle {
		if now.Sub(c.idleAt) > p.maxAge[i] {
			dead = append(dead, c)
			continue
		}
		p.idle[n], p.maxAge[n] = c, p.maxAge[i]
		n++
	}
	clear(p.idle[n:])
	p.idle, p.maxAge = p.idle[:n], p.maxAge[:n]
	p.mu.Unlock()
	for _, c := range dead {
		c.Close() //nolint:errcheck
	}
}

// Close closes every idle connection; later Gets fail with ErrClosed and
// later Puts close their connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.maxAge, p.closed = nil, nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.Close() //nolint:errcheck
	}
	if x := p.mux.Load(); x != nil {
		x.Close() //nolint:errcheck // closing anyway
	}
	return nil
}

// Pools is a registry of Pools keyed by an arbitrary name ("host:port",
// "host:port/bucket", lua-resty's opts.pool), meant to be shared by a whole
// process so every Lua VM draws from the same pools. The zero value is ready.
type Pools struct {
	mu sync.Mutex
	m  map[string]*Pool
}

// Pool returns the pool named key, creating it for addr and opts on first
// use; later calls with the same key return the same pool whatever their addr.
func (ps *Pools) Pool(key, addr string, opts *Options) *Pool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[key]; ok {
		return p
	}
	if ps.m == nil {
		ps.m = make(map[string]*Pool)
	}
	p := NewPool(addr, opts)
	ps.m[key] = p
	return p
}

// Close closes and forgets every pool.
func (ps *Pools) Close() error {
	ps.mu.Lock()
	m := ps.m
	ps.m = nil
	ps.mu.Unlock()
	for _, p := range m {
		p.Close() //nolint:errcheck
	}
	return nil
}
