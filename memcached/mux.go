package memcached

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The Client's transport: a few connections per server, each shared by every
// goroutine that wants that server.
//
// Writing: callers append their requests to the connection's write buffer
// under its lock; whoever finds no write in progress becomes the writer and
// keeps writing until the buffer stays empty, so concurrent requests leave
// in one syscall.
//
// Reading: memcached answers a connection's requests in order (binary quiet
// requests simply skip their answer), so pending calls form a FIFO and the
// head is always the next to complete; binary opaques are checked against the
// head's range, which is also how a quiet request's failure reaches the
// caller that sent it. There is no reader goroutine: a waiting caller that
// finds nobody reading becomes the reader, completes the head calls as their
// replies arrive (its own included), keeps going while replies are buffered,
// and then hands the reader role to the new head, which is the oldest
// waiter. The reader blocks on the socket with the head's deadline, so every
// waiter is bounded by its own deadline without a timer per call. One
// goroutine at a time holds the role, so a call's result is never written by
// two goroutines.
//
// An I/O error or an unparsable reply closes the connection and fails every
// call still queued on it (the reuse rule: see Resumable). A timeout, on a
// Mux, fails only the calls whose deadline has passed, as long as it came
// before any byte of a reply: each leaves a stand-in in the queue whose
// reply is read and dropped, so the stream stays in step for the calls
// beside it. A stand-in whose reply is more than skipGrace late when a call
// times out gives the connection up (and a timeout in the middle of a reply
// always does).

// textKind says how the reader consumes a text reply.
type textKind uint8

const (
	kindStore textKind = iota
	kindGet
	kindDelete
	kindCounter
	kindTouch
	kindOK
	kindStats
	kindVersion
)

// What a call's done channel carries.
const (
	doneResult uint8 = iota // the call is complete
	doneTurn                // the call is the head and now holds the reader role
)

// call is one caller's pending operation: a single request, or a batch of
// quiet requests ended by a terminal one (opaques first..last).
type call struct {
	done     chan uint8
	deadline time.Time

	op          Opcode
	first, last uint32
	statMulti   bool
	kind        textKind

	err    error
	status Status
	cas    uint64
	flags  uint32
	value  []byte
	num    uint64
	str    string
	hit    bool
	items  map[string]*Item
	stats  map[string]string
	quiet  []quietFail
	// raw, when set, receives a copy of the terminal response whatever its
	// status (Mux.Do).
	raw *Response
	// text, when set, receives the text reply verbatim (Mux.DoText).
	text *TextReply
	// skip marks a stand-in for a call that timed out before its reply
	// came: the connection owns it, reads the reply and drops it.
	skip bool
}

// quietFail is the failure of the quiet request at offset index of a batch.
type quietFail struct {
	index uint32
	err   error
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan uint8, 1)} }}

func getCall() *call { return callPool.Get().(*call) }

func putCall(c *call) {
	done := c.done
	*c = call{done: done}
	callPool.Put(c)
}

// mconn is one shared connection.
type mconn struct {
	nc      net.Conn
	br      *bufio.Reader
	proto   Protocol
	maxBody int
	send    time.Duration
	timeout time.Duration
	// lost, when set, is told once that m lost its stream to an I/O error,
	// so that the connections beside it are not trusted either.
	lost func(*mconn, error)

	// Used only by the goroutine holding the reader role.
	resp Response
	tv   TextValue
	// dropped receives the text replies of skipped calls.
	dropped TextReply
	// readDL is the socket's read deadline: the reader's alone, unless
	// earliest is set, when it is guarded by mu.
	readDL time.Time
	// earliest makes the reader wait no longer than the earliest deadline
	// of all pending calls rather than the head's: a Mux's callers bring
	// deadlines of their own, and one that is cut short must not wait
	// behind a longer one.
	earliest bool
	// after is set when a reply was whole but the stream cannot be trusted
	// past it: the server said it wants SASL first (and hangs up), or a text
	// reply was not one its command is answered with. The reply's caller
	// gets it; the calls behind fail with after.
	after error

	mu       sync.Mutex
	wbuf     []byte
	spare    []byte
	writing  bool
	reading  bool
	opaque   uint32
	queue    []*call // pending, in send order
	qhead    int
	err      error
	dead     atomic.Bool  // err != nil, readable without the lock
	inflight atomic.Int32 // calls queued, for choosing among connections
}

func newMconn(c *Conn, proto Protocol, timeout time.Duration) *mconn {
	return &mconn{
		nc:      c.nc,
		br:      c.br,
		proto:   proto,
		maxBody: c.opts.MaxValueSize,
		send:    c.send,
		timeout: timeout,
	}
}

// begin locks m for appending a request; it fails if m is closed.
func (m *mconn) begin() error {
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return err
	}
	return nil
}

// enqueue makes c the newest pending call; m.mu is held. A deadline the
// caller set is kept.
func (m *mconn) enqueue(c *call) {
	if c.deadline.IsZero() {
		c.deadline = time.Now().Add(m.timeout)
	}
	m.queue = append(m.queue, c)
	m.inflight.Add(1)
}

// addBinary appends req under m.mu for c, queueing c with its first
// request. last marks the request whose answer completes c.
func (m *mconn) addBinary(c *call, req *Request, last bool) {
	m.opaque++
	if m.opaque == 0 { // zero never matches, so a zeroed reply is refused
		m.opaque++
	}
	req.Opaque = m.opaque
	if c.first == 0 {
		c.first = req.Opaque
		m.enqueue(c)
	}
	if last {
		c.last = req.Opaque
	}
	m.wbuf = AppendRequest(m.wbuf, req)
}

// addText queues c for the reply to the command already appended to m.wbuf.
func (m *mconn) addText(c *call) { m.enqueue(c) }

// commit unlocks m and writes the buffer unless another caller is writing.
func (m *mconn) commit() { m.commitSend(m.send) }

// commitSend is commit with the caller's send timeout for the write it may
// do (other callers' requests in the same write share it).
func (m *mconn) commitSend(send time.Duration) {
	if m.writing {
		m.mu.Unlock()
		return
	}
	m.writing = true
	// Under load (other calls in flight here), let callers that are already
	// runnable — woken by the same batch of replies — add their requests
	// first, so that they share this write. Alone, yielding would only cost a
	// thread wake-up.
	if len(m.queue)-m.qhead > 1 {
		m.mu.Unlock()
		runtime.Gosched()
		m.mu.Lock()
	}
	m.writeLoop(false, send)
}

// bigWrite is the batch size past which writing moves to its own goroutine:
// a caller stuck in a long write could not read replies, and a server that
// cannot send its replies stops reading requests.
const bigWrite = 256 << 10

// writeLoop writes until the buffer stays empty, each write bounded by
// send; m.mu is held and m.writing set on entry, and both are released on
// return.
func (m *mconn) writeLoop(background bool, send time.Duration) {
	for {
		if !background && len(m.wbuf) > bigWrite {
			go func() {
				m.mu.Lock()
				m.writeLoop(true, send)
			}()
			m.mu.Unlock()
			return
		}
		out := m.wbuf
		m.wbuf = m.spare[:0]
		m.mu.Unlock()
		m.nc.SetWriteDeadline(time.Now().Add(send)) //nolint:errcheck
		_, err := m.nc.Write(out)
		m.mu.Lock()
		m.spare = out[:0]
		if err != nil {
			m.writing = false
			m.mu.Unlock()
			m.fail(&SendError{wrapNetErr(err)})
			return
		}
		if len(m.wbuf) == 0 || m.err != nil {
			m.writing = false
			m.mu.Unlock()
			return
		}
	}
}

// wait returns c's error once c is complete, reading replies itself when
// nobody else is.
func (m *mconn) wait(c *call) error {
	m.mu.Lock()
	// A reader may have completed c before its caller got here; its result
	// is sent before the role is released, so under the lock it is visible.
	select {
	case v := <-c.done:
		m.mu.Unlock()
		if v == doneTurn {
			m.read(c)
		}
		return c.err
	default:
	}
	if !m.reading && m.err == nil {
		m.reading = true
		m.mu.Unlock()
		m.read(c)
		return c.err
	}
	m.mu.Unlock()
	if <-c.done == doneTurn {
		m.read(c)
	}
	return c.err
}

// read holds the reader role until self is complete and no reply is left
// buffered, then passes the role to the head of the queue.
func (m *mconn) read(self *call) {
	selfDone := false
	for !selfDone || m.replyBuffered() {
		m.mu.Lock()
		if m.qhead == len(m.queue) {
			m.mu.Unlock()
			m.drain(pending(self, selfDone), fmt.Errorf("%w: reply with no request waiting", ErrProtocol))
			return
		}
		head := m.queue[m.qhead]
		m.mu.Unlock()
		if m.earliest && m.br.Buffered() == 0 {
			// Wait for the next reply apart from reading it: a timeout
			// here has consumed nothing, so the stream is still in step
			// and only the calls whose deadline passed need to fail.
			m.blockingRead(head)
			if _, err := m.br.Peek(1); err != nil {
				err = wrapNetErr(err)
				if errors.Is(err, ErrTimeout) && m.expire(self, &selfDone, err) {
					continue
				}
				m.drain(pending(self, selfDone), err)
				return
			}
		}
		complete, err := m.readReply(head)
		if err != nil {
			m.drain(pending(self, selfDone), wrapNetErr(err))
			return
		}
		if !complete {
			continue
		}
		m.mu.Lock()
		m.queue[m.qhead] = nil
		m.qhead++
		m.inflight.Add(-1)
		if m.qhead == len(m.queue) {
			m.queue, m.qhead = m.queue[:0], 0
		} else if m.qhead >= 256 && m.qhead*2 >= len(m.queue) {
			// Under steady load the queue never empties: slide it down so
			// that it does not grow forever.
			n := copy(m.queue, m.queue[m.qhead:])
			clear(m.queue[n:])
			m.queue, m.qhead = m.queue[:n], 0
		}
		m.mu.Unlock()
		switch {
		case head == self:
			selfDone = true
		case !head.skip:
			head.done <- doneResult
		}
		if m.after != nil {
			m.drain(pending(self, selfDone), m.after)
			return
		}
	}
	m.mu.Lock()
	for _, next := range m.queue[m.qhead:] {
		if !next.skip {
			// The oldest caller still waiting reads on, the replies of
			// skipped calls before it first.
			m.mu.Unlock()
			next.done <- doneTurn
			return
		}
	}
	m.reading = false
	m.mu.Unlock()
}

// skipGrace is how long past its caller's deadline the reply of a skipped
// call may take before the connection is given up: memcached answers in
// microseconds, so a reply that late means the server or the path is stuck.
const skipGrace = time.Second

// expire, on a read that timed out before any byte of a reply came, fails
// the calls whose deadline has passed with err and leaves stand-ins in
// their place in the queue, whose replies will be read and dropped: the
// calls beside them go on. It reports false, having failed nothing, when
// a stand-in's reply is overdue: the connection is then given up.
func (m *mconn) expire(self *call, selfDone *bool, err error) bool {
	now := time.Now()
	var failed []*call
	m.mu.Lock()
	for i, c := range m.queue[m.qhead:] {
		if c.deadline.After(now) {
			continue
		}
		if c.skip {
			m.mu.Unlock()
			return false
		}
		// A Mux call is one request with one reply (Do, DoText): what
		// reading it takes is its opaques or its text kind.
		stand := &call{skip: true, op: c.op, first: c.first, last: c.last, kind: c.kind, deadline: now.Add(skipGrace)}
		if c.text != nil {
			stand.text = &m.dropped
		}
		m.queue[m.qhead+i] = stand
		failed = append(failed, c)
	}
	m.mu.Unlock()
	for _, c := range failed {
		c.err = err
		if c == self {
			*selfDone = true
		} else {
			c.done <- doneResult
		}
	}
	return true
}

// pending returns self unless it is already complete.
func pending(self *call, done bool) *call {
	if done {
		return nil
	}
	return self
}

// replyBuffered reports whether a whole reply (binary), or at least a whole
// line (text), is buffered, so that reading it will not wait.
func (m *mconn) replyBuffered() bool {
	n := m.br.Buffered()
	if m.proto == Text {
		b, _ := m.br.Peek(n)
		return bytes.IndexByte(b, '\n') >= 0
	}
	if n < HeaderLen {
		return false
	}
	hb, _ := m.br.Peek(HeaderLen)
	return n >= HeaderLen+int(ParseHeader(hb).BodyLen)
}

// blockingRead sets the socket's read deadline to head's before a read that
// may wait for the network.
func (m *mconn) blockingRead(head *call) {
	if m.earliest {
		// The earliest deadline of the calls with a caller waiting; a
		// stand-in's grace is looked at only when one of those times out.
		dl := head.deadline
		live := false
		m.mu.Lock()
		for _, c := range m.queue[m.qhead:] {
			if !c.skip && (!live || c.deadline.Before(dl)) {
				dl, live = c.deadline, true
			}
		}
		m.setReadDeadline(dl)
		m.mu.Unlock()
		return
	}
	if !head.deadline.Equal(m.readDL) {
		m.readDL = head.deadline
		m.nc.SetReadDeadline(head.deadline) //nolint:errcheck
	}
}

// setReadDeadline moves the socket's read deadline to dl, also under a
// reader already blocked; m.mu is held.
func (m *mconn) setReadDeadline(dl time.Time) {
	if !dl.Equal(m.readDL) {
		m.readDL = dl
		m.nc.SetReadDeadline(dl) //nolint:errcheck
	}
}

// readReply reads one reply for head: one packet (binary) or one whole reply
// (text). It reports whether head is now complete; an error means the
// stream is lost.
func (m *mconn) readReply(head *call) (bool, error) {
	if m.proto == Text {
		if m.br.Buffered() == 0 {
			m.blockingRead(head)
		}
		if head.text != nil {
			after, err := readTextReply(m.br, head.kind, head.text, &m.tv, m.maxBody)
			m.after = after
			return err == nil, err
		}
		return true, head.readText(m.br, &m.tv, m.maxBody)
	}
	if m.br.Buffered() < HeaderLen {
		m.blockingRead(head)
	}
	hb, err := m.br.Peek(HeaderLen)
	if err != nil {
		if head.raw != nil {
			// As Conn.Receive reports it: a clean EOF between replies.
			return false, err
		}
		return false, unexpected(err)
	}
	if n := HeaderLen + int(ParseHeader(hb).BodyLen); m.br.Buffered() < n {
		m.blockingRead(head)
	}
	r := &m.resp
	if err := ReadResponse(m.br, r, m.maxBody); err != nil {
		return false, err
	}
	if r.Opaque < head.first || r.Opaque > head.last {
		return false, fmt.Errorf("%w: reply opaque %d (%s) outside the waiting request's %d..%d", ErrProtocol, r.Opaque, r.Opcode, head.first, head.last)
	}
	terminal := r.Opaque == head.last && (!head.statMulti || len(r.Key) == 0 || r.Status != StatusNoError)
	if head.raw != nil && terminal {
		head.raw.copyFrom(r)
		if (r.Status == StatusAuthError || r.Status == statusAuthFailure) && r.Opcode != OpSASLAuth && r.Opcode != OpSASLStep {
			m.after = fmt.Errorf("%w: the server requires SASL and closed the connection", ErrAuth)
		}
		return true, nil
	}
	head.takeBinary(r, terminal)
	return terminal, nil
}

// statusAuthFailure is the status memcached sends (rather than the
// protocol draft's 0x08) when a command needs SASL first.
const statusAuthFailure Status = 0x20

// copyFrom makes r a copy of src in r's own buffer.
func (r *Response) copyFrom(src *Response) {
	r.Header = src.Header
	n := int(src.BodyLen)
	r.buf = append(r.buf[:0], src.buf[:n]...)
	e, k := int(src.ExtrasLen), int(src.KeyLen)
	r.Extras = r.buf[:e:e]
	r.Key = r.buf[e : e+k : e+k]
	r.Value = r.buf[e+k : n : n]
}

// fail closes m with err (the first error wins). A reader, if any, then
// fails every queued call; with none, fail does it.
func (m *mconn) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.dead.Store(true)
	var calls []*call
	if !m.reading {
		calls = m.takeQueue()
	}
	m.mu.Unlock()
	m.nc.Close() //nolint:errcheck // closing unblocks the reader
	for _, c := range calls {
		if !c.skip {
			c.err = m.err
			c.done <- doneResult
		}
	}
}

// takeQueue empties the queue; m.mu is held.
func (m *mconn) takeQueue() []*call {
	calls := append([]*call(nil), m.queue[m.qhead:]...)
	m.queue, m.qhead = nil, 0
	m.inflight.Store(0)
	return calls
}

// drain is the reader's exit on error: it closes m and completes every
// queued call with the error (self, when not yet complete, directly;
// others through done).
func (m *mconn) drain(self *call, err error) {
	m.nc.Close() //nolint:errcheck
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.dead.Store(true)
	err = m.err
	calls := m.takeQueue()
	m.reading = false
	m.mu.Unlock()
	if m.lost != nil && ioError(err) {
		m.lost(m, err)
	}
	if self != nil {
		self.err = err
	}
	for _, c := range calls {
		if c != self && !c.skip {
			c.err = err
			c.done <- doneResult
		}
	}
}

// ioError reports whether err is a failure of the socket itself (a reset,
// an EOF): the server is probably gone, unlike after a timeout or a garbled
// reply.
func ioError(err error) bool {
	return !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrClosed)
}

// takeBinary records one response of c.
func (c *call) takeBinary(r *Response, terminal bool) {
	if !terminal {
		switch {
		case c.statMulti:
			c.stats[string(r.Key)] = string(r.Value)
		case r.Status != StatusNoError:
			// A quiet request's only answer is its failure, and it reaches
			// the caller that sent it because its opaque is in c's range.
			c.quiet = append(c.quiet, quietFail{r.Opaque - c.first, r.Err()})
		case c.items != nil:
			key := string(r.Key)
			c.items[key] = &Item{Key: key, Value: clone(r.Value), Flags: r.Flags(), CAS: r.CAS}
		}
		return
	}
	c.status, c.cas = r.Status, r.CAS
	if r.Status != StatusNoError {
		if c.err == nil {
			c.err = &StatusError{Op: r.Opcode, Status: r.Status, Body: string(r.Value)}
		}
		return
	}
	switch r.Opcode {
	case OpGet, OpGetK, OpGAT, OpGATK:
		c.value, c.flags, c.hit = clone(r.Value), r.Flags(), true
	case OpIncrement, OpDecrement:
		c.num, c.err = r.Counter()
	case OpVersion:
		c.str = string(r.Value)
	}
}

func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

// readText consumes c's reply; a returned error means the stream is lost.
func (c *call) readText(br *bufio.Reader, v *TextValue, maxBody int) error {
	switch c.kind {
	case kindGet:
		for {
			ok, err := ReadTextValue(br, v, maxBody)
			if err != nil {
				var se *ServerError
				if errors.As(err, &se) && se.Kind != KindError {
					c.err = err
					return nil
				}
				return err
			}
			if !ok {
				return nil
			}
			if c.items != nil {
				key := string(v.Key)
				c.items[key] = &Item{Key: key, Value: clone(v.Value), Flags: v.Flags, CAS: v.CAS}
			} else {
				c.value, c.flags, c.cas, c.hit = clone(v.Value), v.Flags, v.CAS, true
			}
		}
	case kindStats:
		for {
			line, err := ReadLine(br)
			if err != nil {
				return err
			}
			if IsEnd(line) {
				return nil
			}
			name, val, ok := ParseStatLine(line)
			if !ok {
				return c.lineErr(unexpectedLine(line))
			}
			c.stats[string(name)] = string(val)
		}
	}
	line, err := ReadLine(br)
	if err != nil {
		return err
	}
	switch c.kind {
	case kindStore:
		err = ParseStorageReply(line)
	case kindDelete:
		err = ParseDeleteReply(line)
	case kindTouch:
		err = ParseTouchReply(line)
	case kindOK:
		err = ParseOKReply(line)
	case kindCounter:
		c.num, err = ParseCounterReply(line)
	case kindVersion:
		c.str, err = ParseVersionReply(line)
	}
	return c.lineErr(err)
}

// lineErr keeps a reply's error for the caller and says whether the stream
// is lost: a bare ERROR or an unparsable line loses it.
func (c *call) lineErr(err error) error {
	if err == nil {
		return nil
	}
	c.err = err
	if Resumable(err) {
		return nil
	}
	return err
}

// Mux is the shared transport to one server for callers that own no
// connection: single-response requests from every goroutine are pipelined
// onto at most DefaultConnsPerServer connections, as the Client's are, and
// each caller gets its own response back verbatim, whatever its status.
// It speaks its Pool's protocol: binary requests go through Do, text
// commands through DoText. Connections come from the Mux's Pool (an idle
// one, or a new dial with the pool's options and SASL), so a Mux is keyed
// exactly like its pool; they never go back to it. Safe for concurrent use.
type Mux struct {
	pool *Pool
	srv  muxServer

	mu sync.Mutex
	// dialing, while a dial is in progress, is closed when it ends.
	dialing chan struct{}
	idle    []*Lease // most recently released last
}

// Mux returns the Mux in front of p, creating it on first use: every caller
// of the same Pool shares its connections. Pool.Close closes it.
func (p *Pool) Mux() *Mux {
	if x := p.mux.Load(); x != nil {
		return x
	}
	x := newMux(p)
	if p.mux.CompareAndSwap(nil, x) {
		return x
	}
	return p.mux.Load()
}

func newMux(p *Pool) *Mux {
	return &Mux{pool: p, srv: muxServer{addr: p.addr, conns: make([]atomic.Pointer[mconn], DefaultConnsPerServer)}}
}

// Addr returns the server address.
func (x *Mux) Addr() string { return x.pool.addr }

// Do sends req, which must expect exactly one response (not quiet, not
// Stat), and waits for that response, copied into resp's own buffer.
// req.Opaque is replaced by the Mux's (resp.Opaque shows it). The write is
// bounded by send and the wait by read from now; ctx bounds a dial. The
// connection is read with the earliest deadline of its pending calls; a
// timeout fails the calls whose deadline has passed, and the others wait on
// for their replies (see the package's transport notes for when the
// connection is given up instead).
//
// A non-success status is not an error: it is in resp.Status. Errors are
// a *DialError wrapping Pool.Get's (ErrClosed once the pool is closed), I/O
// errors (a *SendError when writing failed), ErrTimeout and ErrProtocol;
// ErrAuth when an earlier reply on the connection said the server wants
// SASL, after which it hangs up.
func (x *Mux) Do(ctx context.Context, req *Request, resp *Response, send, read time.Duration) error {
	if req.Opcode.Quiet() || req.Opcode == OpStat {
		return fmt.Errorf("memcached: Mux.Do: %s expects no single response", req.Opcode)
	}
	if x.pool.opts.Protocol != Binary {
		return fmt.Errorf("memcached: Mux.Do: the pool for %s speaks the %s protocol", x.pool.addr, x.pool.opts.Protocol)
	}
	m, err := x.begin(ctx, 0)
	if err != nil {
		return err
	}
	cl := getCall()
	defer putCall(cl)
	cl.op, cl.raw = req.Opcode, resp
	cl.deadline = time.Now().Add(read)
	m.addBinary(cl, req, true)
	if m.earliest && m.reading && cl.deadline.Before(m.readDL) {
		m.setReadDeadline(cl.deadline)
	}
	m.commitSend(send)
	return m.wait(cl)
}

// DoText sends cmd, one text command that CheckTextCommand accepts (a
// single-key get or gets, a storage command, delete, incr, decr or touch),
// and waits for its reply, copied into reply's own buffers. Other commands
// fail with ErrUnshareable before anything is sent. Timeouts, ctx and the
// connection's fate are as for Do, and so are the errors. A reply the
// server refused the command with (CLIENT_ERROR, SERVER_ERROR, NOT_STORED…)
// is not an error: it is in reply.Line, and the connection goes on. A reply
// read in full after which the stream is out of step (a bare ERROR, a line
// the command is never answered with) is handed back likewise, and the
// connection fails the calls behind it. A dial, when there is no live
// connection, is bounded by read as well as ctx.
func (x *Mux) DoText(ctx context.Context, cmd []byte, reply *TextReply, send, read time.Duration) error {
	kind, err := textCommandKind(cmd)
	if err != nil {
		return err
	}
	if x.pool.opts.Protocol != Text {
		return fmt.Errorf("memcached: Mux.DoText: the pool for %s speaks the %s protocol", x.pool.addr, x.pool.opts.Protocol)
	}
	m, err := x.begin(ctx, read)
	if err != nil {
		return err
	}
	reply.reset()
	cl := getCall()
	defer putCall(cl)
	cl.kind, cl.text = kind, reply
	cl.deadline = time.Now().Add(read)
	m.wbuf = append(m.wbuf, cmd...)
	m.addText(cl)
	if m.earliest && m.reading && cl.deadline.Before(m.readDL) {
		m.setReadDeadline(cl.deadline)
	}
	m.commitSend(send)
	return m.wait(cl)
}

// begin returns a live connection locked for appending a request.
func (x *Mux) begin(ctx context.Context, timeout time.Duration) (*mconn, error) {
	m, err := x.conn(ctx, timeout)
	if err != nil {
		return nil, &DialError{err}
	}
	if err := m.begin(); err != nil {
		// It failed since it was picked: one more try, on a live one.
		if m, err = x.conn(ctx, timeout); err != nil {
			return nil, &DialError{err}
		}
		if err := m.begin(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// conn returns a live connection, taking one from the pool when there is
// none, or when the live ones are busy and a slot is free. ctx and, when
// positive, timeout bound a dial, and the wait for another caller's.
func (x *Mux) conn(ctx context.Context, timeout time.Duration) (*mconn, error) {
	s := &x.srv
	best, empty := s.pick()
	if best != nil && empty < 0 {
		return best, nil
	}
	deadline := deadlineAfter(timeout)
	end, err := x.claimDial(ctx, deadline, func() bool {
		// While a spare is being dialed, the busy connection will do.
		best, empty = s.pick()
		return best != nil && (empty < 0 || x.dialing != nil)
	})
	if err != nil {
		return nil, err
	}
	if end == nil {
		return best, nil
	}
	defer end()
	return x.dial(ctx, deadline, best, empty)
}

func deadlineAfter(timeout time.Duration) time.Time {
	if timeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(timeout)
}

// claimDial makes the caller the one dialer of the Mux, unless done —
// checked under x.mu — says there is no need; it then returns a nil end.
// While another caller dials, it waits for that dial within its own
// bounds — a caller with a short connect timeout must not wait out
// another's long one — and checks again (dialing itself if that dial
// failed). The dialer calls end when its dial is over.
func (x *Mux) claimDial(ctx context.Context, deadline time.Time, done func() bool) (end func(), err error) {
	for {
		x.mu.Lock()
		if done() {
			x.mu.Unlock()
			return nil, nil
		}
		wait := x.dialing
		if wait == nil {
			ch := make(chan struct{})
			x.dialing = ch
			x.mu.Unlock()
			return func() {
				x.mu.Lock()
				x.dialing = nil
				x.mu.Unlock()
				close(ch)
			}, nil
		}
		x.mu.Unlock()
		if err := waitDial(ctx, wait, deadline); err != nil {
			return nil, fmt.Errorf("memcached: dial %s: %w", x.pool.addr, wrapNetErr(err))
		}
	}
}

// waitDial waits until dial is closed, ctx is done or deadline (if set)
// passes.
func waitDial(ctx context.Context, dial <-chan struct{}, deadline time.Time) error {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-dial:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-expired:
		return context.DeadlineExceeded
	}
}

// dialContext bounds ctx by deadline, when set.
func dialContext(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline)
}

// dial takes a connection from the pool into slot empty; best is the busy
// connection to fall back on, if any.
func (x *Mux) dial(ctx context.Context, deadline time.Time, best *mconn, empty int) (*mconn, error) {
	ctx, cancel := dialContext(ctx, deadline)
	defer cancel()
	c, err := x.pool.Get(ctx)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			x.Close() //nolint:errcheck // the pool is gone: so are its connections
			return nil, err
		}
		if best != nil {
			return best, nil // a spare connection failed; the busy one works
		}
		return nil, err
	}
	m := newMconn(c, x.pool.opts.Protocol, c.opts.sendTimeout()+c.opts.readTimeout())
	m.lost, m.earliest = x.srv.lost, true
	if old := x.srv.conns[empty].Swap(m); old != nil {
		old.fail(ErrClosed)
	}
	return m, nil
}

// Close closes the Mux's connections, failing the calls in flight with
// ErrClosed; a later Do takes a new connection from the pool.
func (x *Mux) Close() error {
	for i := range x.srv.conns {
		if m := x.srv.conns[i].Swap(nil); m != nil {
			m.fail(ErrClosed)
		}
	}
	return nil
}

// Lease stands for a connection of the caller's own where the caller in
// fact sends its requests on a Mux: it is handed out again after Release
// and expires when left idle, exactly as a pooled *Conn, so that an API
// modelled on checked-out connections (lua-resty's connect, set_keepalive,
// get_reused_times) keeps its observable behaviour without holding a
// socket.
type Lease struct {
	reused int
	idleAt time.Time
	maxAge time.Duration
}

// ReusedTimes returns how many times the Lease was handed out again (0 for
// a new one), as Conn.ReusedTimes does for a pooled connection.
func (l *Lease) ReusedTimes() int { return l.reused }

// Lease makes sure that a call will find a connection to the server
// without dialing — a live shared one, or an idle one in the pool — or
// else dials one, bounded by ctx and, when positive, timeout, and puts it
// in the pool as it is, for the first caller that needs a connection to
// take: the Mux, or one that wants a connection of its own. It returns the
// most recently released Lease whose idle time has not run out (counting
// the reuse), or a new one. A failed dial is a *DialError, as Pool.Get
// reports it.
func (x *Mux) Lease(ctx context.Context, timeout time.Duration) (*Lease, error) {
	if err := x.ready(ctx, timeout); err != nil {
		return nil, &DialError{err}
	}
	now := time.Now()
	x.mu.Lock()
	for n := len(x.idle); n > 0; n = len(x.idle) {
		l := x.idle[n-1]
		x.idle[n-1] = nil
		x.idle = x.idle[:n-1]
		if now.Sub(l.idleAt) > l.maxAge {
			continue
		}
		x.mu.Unlock()
		l.reused++
		return l, nil
	}
	x.mu.Unlock()
	return &Lease{}, nil
}

// ready is Lease's check for a connection, and its dial.
func (x *Mux) ready(ctx context.Context, timeout time.Duration) error {
	if best, _ := x.srv.pick(); best != nil {
		return nil
	}
	deadline := deadlineAfter(timeout)
	end, err := x.claimDial(ctx, deadline, func() bool {
		best, _ := x.srv.pick()
		return best != nil || x.pool.Idle() > 0
	})
	if err != nil || end == nil {
		return err
	}
	defer end()
	p := x.pool
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		x.Close() //nolint:errcheck // the pool is gone: so are its connections
		return ErrClosed
	}
	ctx, cancel := dialContext(ctx, deadline)
	defer cancel()
	c, err := Dial(ctx, p.addr, &p.opts)
	if err != nil {
		return err
	}
	// Not through Put, which would drop it if the server already hung up:
	// whoever takes it must find that out, as the socket of a caller that
	// connected before the hang-up does.
	c.pool, c.idleAt = p, time.Now()
	p.mu.Lock()
	closed = p.closed
	if !closed {
		p.idle = append(p.idle, c)
		p.maxAge = append(p.maxAge, DefaultMaxIdle)
	}
	p.mu.Unlock()
	if closed {
		c.Close() //nolint:errcheck // nothing to report
		x.Close() //nolint:errcheck // the pool is gone: so are its connections
		return ErrClosed
	}
	return nil
}

// Release gives l back, to be forgotten after maxIdle unused (≤0:
// DefaultMaxIdle), keeping at most poolSize released Leases (≤0:
// DefaultPoolSize) — the oldest are forgotten first: Pool.Put's rule. A
// Lease the caller closes is simply not released.
func (x *Mux) Release(l *Lease, maxIdle time.Duration, poolSize int) {
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdle
	}
	if poolSize <= 0 {
		poolSize = DefaultPoolSize
	}
	l.idleAt, l.maxAge = time.Now(), maxIdle
	x.mu.Lock()
	x.idle = append(x.idle, l)
	if over := len(x.idle) - poolSize; over > 0 {
		n := copy(x.idle, x.idle[over:])
		clear(x.idle[n:])
		x.idle = x.idle[:n]
	}
	x.mu.Unlock()
}

// DialError is what Mux.Do returns when it could not get a connection
// (a refused or timed-out connect, a failed SASL), so that a caller can tell
// it from a request that failed on the wire. Its text is the dial error's.
type DialError struct{ Err error }

func (e *DialError) Error() string { return e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// SendError is a shared connection's failure to write: every call queued
// on it fails with it, whether or not its own request had gone out. Its
// text is the write error's.
type SendError struct{ Err error }

func (e *SendError) Error() string { return e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }
