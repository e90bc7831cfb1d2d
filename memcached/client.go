package memcached

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero-valued Config fields.
const (
	// DefaultConnsPerServer connections per server at most are shared by
	// all goroutines; requests are pipelined on them, and a second one is
	// opened only when the first has many requests in flight.
	DefaultConnsPerServer = 2
	// DefaultRetryInterval is how long a server that failed to connect stays
	// marked down (libmemcached's retry_timeout).
	DefaultRetryInterval = 2 * time.Second
)

// Distribution chooses how a Client spreads keys over servers.
type Distribution uint8

// Distributions. The zero value is Ketama.
const (
	// Ketama is libmemcached's weighted ketama (see KetamaSelector).
	Ketama Distribution = iota
	// ModuloCRC32 is gomemcache's ServerList (see ModuloSelector).
	ModuloCRC32
)

// Config configures a Client. Zero values mean the DefaultXxx constants.
type Config struct {
	// Servers are "host:port" or "host:port weight" (or unix socket paths).
	Servers      []string
	Distribution Distribution
	Protocol     Protocol
	// ConnectTimeout bounds a dial (with TLS and SASL); SendTimeout +
	// ReadTimeout bound one operation from request to reply.
	ConnectTimeout, SendTimeout, ReadTimeout time.Duration
	ConnsPerServer                           int
	// RetryInterval is how long a server that fails to connect is skipped;
	// its keys go to the next server on the ring meanwhile and come back when
	// it answers again.
	RetryInterval time.Duration
	// DisableFailover keeps keys on their own server: a server that cannot be
	// reached fails its operations instead of being skipped.
	DisableFailover bool
	TLS             *tls.Config
	// Username and Password enable SASL PLAIN (binary protocol only).
	Username, Password string
	// MaxValueSize bounds a reply body (≤0: DefaultMaxBodyLen).
	MaxValueSize int
}

// Item is a cached value.
type Item struct {
	Key        string
	Value      []byte
	Flags      uint32
	Expiration int32 // seconds from now, or a unix time above 30 days
	CAS        uint64
}

// Client is a memcached client over a list of servers, safe for concurrent
// use. Operations from all goroutines are pipelined onto a few shared
// connections per server.
type Client struct {
	cfg     Config
	sel     Selector
	servers []*muxServer
	opts    Options
	timeout time.Duration
	closed  atomic.Bool
}

type muxServer struct {
	addr      string
	conns     []atomic.Pointer[mconn]
	downUntil atomic.Int64 // unix nanoseconds; set with the selector's mark
	dialMu    sync.Mutex   // one dial at a time per server
}

// New returns a Client for cfg. It does not connect: connections are made on
// first use.
func New(cfg Config) (*Client, error) {
	servers, err := ParseServers(cfg.Servers)
	if err != nil {
		return nil, err
	}
	var sel Selector
	switch cfg.Distribution {
	case Ketama:
		sel, err = NewKetama(servers)
	case ModuloCRC32:
		sel, err = NewModulo(servers)
	default:
		err = fmt.Errorf("memcached: unknown distribution %d", cfg.Distribution)
	}
	if err != nil {
		return nil, err
	}
	return NewWithSelector(cfg, sel)
}

// NewWithSelector is New with a selector of the caller's; cfg.Servers and
// cfg.Distribution are ignored.
func NewWithSelector(cfg Config, sel Selector) (*Client, error) {
	if cfg.ConnsPerServer <= 0 {
		cfg.ConnsPerServer = DefaultConnsPerServer
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	c := &Client{cfg: cfg, sel: sel, opts: Options{
		TLS:            cfg.TLS,
		ConnectTimeout: cfg.ConnectTimeout,
		SendTimeout:    cfg.SendTimeout,
		ReadTimeout:    cfg.ReadTimeout,
		Username:       cfg.Username,
		Password:       cfg.Password,
		Protocol:       cfg.Protocol,
		MaxValueSize:   cfg.MaxValueSize,
	}}
	c.timeout = c.opts.sendTimeout() + c.opts.readTimeout()
	for _, s := range sel.Servers() {
		c.servers = append(c.servers, &muxServer{addr: s.Addr, conns: make([]atomic.Pointer[mconn], cfg.ConnsPerServer)})
	}
	return c, nil
}

// Selector returns the client's server selector (to inspect or mark
// servers down by hand).
func (c *Client) Selector() Selector { return c.sel }

// Close closes every connection. Operations after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.closed.Store(true)
	for _, s := range c.servers {
		for i := range s.conns {
			if m := s.conns[i].Swap(nil); m != nil {
				m.fail(ErrClosed)
			}
		}
	}
	return nil
}

// connFor returns a live shared connection to the server for key, dialing
// when needed; a server that cannot be dialed is marked down and the key
// tried on the next one.
func (c *Client) connFor(key string) (*mconn, error) {
	var lastErr error
	for range c.servers {
		i, err := c.sel.Pick(key)
		if err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("%w: %w", err, lastErr)
			}
			return nil, err
		}
		m, err := c.connTo(i)
		if err == nil {
			return m, nil
		}
		lastErr = err
		if c.cfg.DisableFailover || errors.Is(err, ErrClosed) {
			return nil, err
		}
	}
	return nil, lastErr
}

// lost closes the connections beside m after m's socket failed: when a
// server dies every connection to it is dead, and finding out one request at
// a time would fail one request per connection.
func (s *muxServer) lost(m *mconn, err error) {
	for i := range s.conns {
		o := s.conns[i].Load()
		if o == nil || !s.conns[i].CompareAndSwap(o, nil) || o == m {
			continue
		}
		o.fail(fmt.Errorf("%w: %s: another connection to it failed: %w", ErrClosed, s.addr, err))
	}
}

// connTo returns a live connection to server i.
func (c *Client) connTo(i int) (*mconn, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	s := c.servers[i]
	best, empty := s.pick()
	if best != nil && empty < 0 {
		return best, nil
	}
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	if best, empty = s.pick(); best != nil && empty < 0 {
		return best, nil // dialed while we waited
	}
	// Callers that queued behind a failed dial fail fast instead of each
	// waiting out its own connect timeout.
	if until := s.downUntil.Load(); best == nil && until > time.Now().UnixNano() {
		return nil, fmt.Errorf("%w: %s", ErrServerDown, s.addr)
	}
	cn, err := Dial(context.Background(), s.addr, &c.opts)
	if err != nil {
		if best != nil {
			return best, nil // a spare connection failed; the busy one works
		}
		if !c.cfg.DisableFailover && !errors.Is(err, ErrAuth) {
			until := time.Now().Add(c.cfg.RetryInterval)
			s.downUntil.Store(until.UnixNano())
			c.sel.MarkDown(i, until)
		}
		return nil, err
	}
	s.downUntil.Store(0)
	c.sel.MarkUp(i)
	m := newMconn(cn, c.cfg.Protocol, c.timeout)
	m.lost = s.lost
	if old := s.conns[empty].Swap(m); old != nil {
		old.fail(ErrClosed)
	}
	if c.closed.Load() {
		m.fail(ErrClosed)
		return nil, ErrClosed
	}
	return m, nil
}

// spillAt is the number of calls in flight on a connection past which the
// next call prefers another connection. Below it, one connection carries all
// the traffic: the server thread behind it stays awake, and a lone caller
// does not pay for waking a second one.
const spillAt = 16

// pick returns the first live connection with fewer than spillAt calls in
// flight (empty = -1), or else the least loaded one and the index of a free
// slot to dial into (-1 when every slot is live).
func (s *muxServer) pick() (best *mconn, empty int) {
	empty = -1
	var bestLoad int32
	for j := range s.conns {
		m := s.conns[j].Load()
		if m == nil || m.dead.Load() {
			if empty < 0 {
				empty = j
			}
			continue
		}
		load := m.inflight.Load()
		if load < spillAt {
			return m, -1
		}
		if best == nil || load < bestLoad {
			best, bestLoad = m, load
		}
	}
	return best, empty
}

// allConns returns a connection to every server that can be reached, and
// the first error for those that cannot.
func (c *Client) allConns() ([]*mconn, []string, error) {
	var conns []*mconn
	var addrs []string
	var firstErr error
	for i, s := range c.servers {
		m, err := c.connTo(i)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		conns = append(conns, m)
		addrs = append(addrs, s.addr)
	}
	return conns, addrs, firstErr
}

func (c *Client) text() bool { return c.cfg.Protocol == Text }

func (c *Client) checkKey(key string) error { return CheckKey(key, c.text()) }

// do sends one binary request for a single-response operation and waits.
func (c *Client) do(m *mconn, cl *call, req *Request) error {
	if err := m.begin(); err != nil {
		return err
	}
	cl.op = req.Opcode
	m.addBinary(cl, req, true)
	m.commit()
	return m.wait(cl)
}

// doText sends one text command built by enc and waits for its reply.
func (c *Client) doText(m *mconn, cl *call, kind textKind, enc func([]byte) []byte) error {
	if err := m.begin(); err != nil {
		return err
	}
	cl.kind = kind
	m.wbuf = enc(m.wbuf)
	m.addText(cl)
	m.commit()
	return m.wait(cl)
}

// Protocol returns the protocol the client speaks.
func (c *Client) Protocol() Protocol { return c.cfg.Protocol }

// binaryExptime maps the text protocol's "negative means already expired"
// onto the binary protocol's unsigned field: an absolute time long past.
func binaryExptime(e int32) uint32 {
	if e < 0 {
		return RelativeExpiryLimit + 1
	}
	return uint32(e)
}

// Get returns the item for key, or ErrCacheMiss.
func (c *Client) Get(key string) (*Item, error) {
	return c.get(key, false, 0)
}

// GetAndTouch returns the item for key and sets its expiration, or
// ErrCacheMiss.
func (c *Client) GetAndTouch(key string, exptime int32) (*Item, error) {
	return c.get(key, true, exptime)
}

func (c *Client) get(key string, touch bool, exptime int32) (*Item, error) {
	if err := c.checkKey(key); err != nil {
		return nil, err
	}
	m, err := c.connFor(key)
	if err != nil {
		return nil, err
	}
	cl := getCall()
	defer putCall(cl)
	if c.text() {
		err = c.doText(m, cl, kindGet, func(b []byte) []byte {
			if touch {
				return AppendGATCommand(b, "gats", int64(exptime), key)
			}
			return AppendRetrievalCommand(b, "gets", key)
		})
		if err == nil && !cl.hit {
			err = ErrCacheMiss
		}
	} else {
		req := Request{Opcode: OpGet, Key: key}
		var ex [4]byte
		if touch {
			req.Opcode, req.Extras = OpGAT, AppendExpiryExtras(ex[:0], binaryExptime(exptime))
		}
		err = c.do(m, cl, &req)
	}
	if err != nil {
		return nil, err
	}
	return &Item{Key: key, Value: cl.value, Flags: cl.flags, CAS: cl.cas}, nil
}

// GetMulti returns the items found for keys, keyed by key; missing keys are
// simply absent. Keys are fetched from each server in one pipelined batch.
func (c *Client) GetMulti(keys []string) (map[string]*Item, error) {
	byConn := make(map[*mconn][]string)
	for _, k := range keys {
		if err := c.checkKey(k); err != nil {
			return nil, err
		}
		m, err := c.connFor(k)
		if err != nil {
			return nil, err
		}
		byConn[m] = append(byConn[m], k)
	}
	items := make(map[string]*Item, len(keys))
	type result struct {
		cl  *call
		err error
	}
	results := make(chan result, len(byConn))
	for m, ks := range byConn {
		go func() {
			cl := getCall()
			cl.items = make(map[string]*Item, len(ks))
			var err error
			if c.text() {
				for len(ks) > 0 && err == nil {
					n := min(len(ks), textBatch)
					err = c.doText(m, cl, kindGet, func(b []byte) []byte { return AppendRetrievalCommand(b, "gets", ks[:n]...) })
					ks = ks[n:]
				}
			} else if err = m.begin(); err == nil {
				cl.op = OpGetKQ
				for _, k := range ks {
					m.addBinary(cl, &Request{Opcode: OpGetKQ, Key: k}, false)
				}
				m.addBinary(cl, &Request{Opcode: OpNoop}, true)
				m.commit()
				if err = m.wait(cl); err == nil && len(cl.quiet) > 0 {
					err = cl.quiet[0].err
				}
			}
			results <- result{cl, err}
		}()
	}
	var firstErr error
	for range byConn {
		r := <-results
		for k, it := range r.cl.items {
			items[k] = it
		}
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		putCall(r.cl)
	}
	return items, firstErr
}

// textBatch bounds the keys of one text "gets" and the commands of one
// pipelined text batch.
const textBatch = 100

// SetMulti stores every item unconditionally, in one pipelined batch per
// server. failed holds the error of each item that was not stored, by key
// (nil when all were); err reports a failure of a whole batch (a server that
// cannot be reached, a broken connection), after which the items of that
// batch are in an unknown state. With the binary protocol the batch is quiet
// SetQ requests closed by a Noop, so only failures travel back — and only to
// this caller, whatever else shares the connection.
func (c *Client) SetMulti(items []*Item) (failed map[string]error, err error) {
	byConn := make(map[*mconn][]*Item)
	for _, it := range items {
		if err := c.checkKey(it.Key); err != nil {
			return nil, err
		}
		if lim := c.cfg.MaxValueSize; lim > 0 && len(it.Value) > lim {
			return nil, fmt.Errorf("%w: %q: %d bytes", ErrValueTooLarge, it.Key, len(it.Value))
		}
		m, err := c.connFor(it.Key)
		if err != nil {
			return nil, err
		}
		byConn[m] = append(byConn[m], it)
	}
	type result struct {
		failed map[string]error
		err    error
	}
	results := make(chan result, len(byConn))
	for m, its := range byConn {
		go func() {
			f, err := c.setBatch(m, its)
			results <- result{f, err}
		}()
	}
	for range byConn {
		r := <-results
		for k, e := range r.failed {
			if failed == nil {
				failed = make(map[string]error)
			}
			failed[k] = e
		}
		if r.err != nil && err == nil {
			err = r.err
		}
	}
	return failed, err
}

// setBatch stores its on m in one pipelined batch.
func (c *Client) setBatch(m *mconn, its []*Item) (map[string]error, error) {
	failed := map[string]error{}
	if !c.text() {
		cl := getCall()
		defer putCall(cl)
		if err := m.begin(); err != nil {
			return nil, err
		}
		cl.op = OpSetQ
		var ex [8]byte
		for _, it := range its {
			req := Request{Opcode: OpSetQ, Key: it.Key, Value: it.Value,
				Extras: AppendStoreExtras(ex[:0], it.Flags, binaryExptime(it.Expiration))}
			m.addBinary(cl, &req, false)
		}
		m.addBinary(cl, &Request{Opcode: OpNoop}, true)
		m.commit()
		if err := m.wait(cl); err != nil {
			return nil, err
		}
		for _, q := range cl.quiet {
			if int(q.index) < len(its) {
				failed[its[q.index].Key] = q.err
			}
		}
		return failed, nil
	}
	for len(its) > 0 {
		n := min(len(its), textBatch)
		calls := make([]*call, n)
		if err := m.begin(); err != nil {
			return nil, err
		}
		for i, it := range its[:n] {
			calls[i] = getCall()
			calls[i].kind = kindStore
			m.wbuf = AppendStorageCommand(m.wbuf, "set", it.Key, it.Flags, int64(it.Expiration), it.Value, 0, false)
			m.addText(calls[i])
		}
		m.commit()
		var batchErr error
		for i, cl := range calls {
			err := m.wait(cl)
			putCall(cl)
			if err == nil {
				continue
			}
			if !Resumable(err) && batchErr == nil {
				batchErr = err
			}
			failed[its[i].Key] = err
		}
		if batchErr != nil {
			return nil, batchErr
		}
		its = its[n:]
	}
	return failed, nil
}

// Set stores item unconditionally.
func (c *Client) Set(item *Item) error { return c.store(OpSet, "set", item, 0) }

// Add stores item only if its key is absent, else ErrNotStored.
func (c *Client) Add(item *Item) error { return c.store(OpAdd, "add", item, 0) }

// Replace stores item only if its key exists, else ErrNotStored.
func (c *Client) Replace(item *Item) error { return c.store(OpReplace, "replace", item, 0) }

// Append appends item.Value to the existing value, else ErrNotStored.
func (c *Client) Append(item *Item) error { return c.store(OpAppend, "append", item, 0) }

// Prepend prepends item.Value to the existing value, else ErrNotStored.
func (c *Client) Prepend(item *Item) error { return c.store(OpPrepend, "prepend", item, 0) }

// CompareAndSwap stores item only if it is unchanged since item.CAS was read:
// ErrCASConflict if it changed, ErrCacheMiss if it is gone.
func (c *Client) CompareAndSwap(item *Item) error {
	return c.store(OpSet, "cas", item, item.CAS)
}

func (c *Client) store(op Opcode, cmd string, item *Item, cas uint64) error {
	if err := c.checkKey(item.Key); err != nil {
		return err
	}
	if lim := c.cfg.MaxValueSize; lim > 0 && len(item.Value) > lim {
		return fmt.Errorf("%w: %d bytes", ErrValueTooLarge, len(item.Value))
	}
	m, err := c.connFor(item.Key)
	if err != nil {
		return err
	}
	cl := getCall()
	defer putCall(cl)
	if c.text() {
		return c.doText(m, cl, kindStore, func(b []byte) []byte {
			return AppendStorageCommand(b, cmd, item.Key, item.Flags, int64(item.Expiration), item.Value, cas, false)
		})
	}
	req := Request{Opcode: op, Key: item.Key, Value: item.Value, CAS: cas}
	var ex [8]byte
	if op == OpSet || op == OpAdd || op == OpReplace {
		req.Extras = AppendStoreExtras(ex[:0], item.Flags, binaryExptime(item.Expiration))
	}
	if err := c.do(m, cl, &req); err != nil {
		return err
	}
	item.CAS = cl.cas
	return nil
}

// Delete removes key, or returns ErrCacheMiss.
func (c *Client) Delete(key string) error {
	if err := c.checkKey(key); err != nil {
		return err
	}
	m, err := c.connFor(key)
	if err != nil {
		return err
	}
	cl := getCall()
	defer putCall(cl)
	if c.text() {
		return c.doText(m, cl, kindDelete, func(b []byte) []byte { return AppendDeleteCommand(b, key, false) })
	}
	return c.do(m, cl, &Request{Opcode: OpDelete, Key: key})
}

// Increment adds delta to the decimal value of key and returns the result
// (wrapping at 2^64): ErrCacheMiss if key is absent, ErrNonNumeric if the
// value is not a number.
func (c *Client) Increment(key string, delta uint64) (uint64, error) {
	return c.counter(OpIncrement, "incr", key, delta)
}

// Decrement subtracts delta from the value of key, stopping at 0, and
// returns the result; errors as Increment.
func (c *Client) Decrement(key string, delta uint64) (uint64, error) {
	return c.counter(OpDecrement, "decr", key, delta)
}

func (c *Client) counter(op Opcode, cmd, key string, delta uint64) (uint64, error) {
	if err := c.checkKey(key); err != nil {
		return 0, err
	}
	m, err := c.connFor(key)
	if err != nil {
		return 0, err
	}
	cl := getCall()
	defer putCall(cl)
	if c.text() {
		err = c.doText(m, cl, kindCounter, func(b []byte) []byte { return AppendCounterCommand(b, cmd, key, delta, false) })
	} else {
		var ex [20]byte
		err = c.do(m, cl, &Request{Opcode: op, Key: key, Extras: AppendCounterExtras(ex[:0], delta, 0, NoCreate)})
	}
	return cl.num, err
}

// Touch sets the expiration of key, or returns ErrCacheMiss.
func (c *Client) Touch(key string, exptime int32) error {
	if err := c.checkKey(key); err != nil {
		return err
	}
	m, err := c.connFor(key)
	if err != nil {
		return err
	}
	cl := getCall()
	defer putCall(cl)
	if c.text() {
		return c.doText(m, cl, kindTouch, func(b []byte) []byte { return AppendTouchCommand(b, key, int64(exptime), false) })
	}
	var ex [4]byte
	return c.do(m, cl, &Request{Opcode: OpTouch, Key: key, Extras: AppendExpiryExtras(ex[:0], binaryExptime(exptime))})
}

// eachServer runs fn on a connection to every server; it returns the first
// error, including servers that could not be reached.
func (c *Client) eachServer(fn func(m *mconn, addr string, cl *call) error) error {
	conns, addrs, err := c.allConns()
	for i, m := range conns {
		cl := getCall()
		if e := fn(m, addrs[i], cl); e != nil && err == nil {
			err = fmt.Errorf("memcached: %s: %w", addrs[i], e)
		}
		putCall(cl)
	}
	return err
}

// FlushAll invalidates every item on every server.
func (c *Client) FlushAll() error {
	return c.eachServer(func(m *mconn, _ string, cl *call) error {
		if c.text() {
			return c.doText(m, cl, kindOK, func(b []byte) []byte { return AppendFlushAllCommand(b, -1, false) })
		}
		return c.do(m, cl, &Request{Opcode: OpFlush})
	})
}

// Stats returns each reachable server's general statistics, keyed by
// address; err reports the first server that failed.
func (c *Client) Stats() (map[string]map[string]string, error) {
	out := make(map[string]map[string]string)
	err := c.eachServer(func(m *mconn, addr string, cl *call) error {
		cl.stats = make(map[string]string)
		var err error
		if c.text() {
			err = c.doText(m, cl, kindStats, func(b []byte) []byte { return AppendWordsCommand(b, "stats") })
		} else {
			cl.statMulti = true
			err = c.do(m, cl, &Request{Opcode: OpStat})
		}
		if err == nil {
			out[addr] = cl.stats
		}
		return err
	})
	return out, err
}

// Version returns each reachable server's version, keyed by address.
func (c *Client) Version() (map[string]string, error) {
	out := make(map[string]string)
	err := c.eachServer(func(m *mconn, addr string, cl *call) error {
		var err error
		if c.text() {
			err = c.doText(m, cl, kindVersion, func(b []byte) []byte { return AppendWordsCommand(b, "version") })
		} else {
			err = c.do(m, cl, &Request{Opcode: OpVersion})
		}
		if err == nil {
			out[addr] = cl.str
		}
		return err
	})
	return out, err
}
