package memcached

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The Client's transport: a few connections per server, each shared by every
// goroutine that wants that server. Callers append their requests to the
// connection's write buffer under its lock; whoever finds no write in
// progress becomes the writer and keeps writing until the buffer stays empty,
// so concurrent requests leave in one syscall. One reader goroutine per
// connection routes each response to its caller — by opaque for the binary
// protocol, in order for the text protocol — and is the only goroutine that
// completes calls, so a call's result is never written by two goroutines.
// A timeout, I/O error or unparsable reply closes the connection and fails
// every call still waiting on it (the one reuse rule: see Resumable).

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

// call is one caller's pending operation: a single request, or a batch of
// quiet requests ended by a terminal one (opaques first..last).
type call struct {
	done  chan struct{}
	timer *time.Timer

	op          Opcode
	first, last uint32
	statMulti   bool
	kind        textKind

	err    error
	status Status
	body   string
	cas    uint64
	flags  uint32
	value  []byte
	num    uint64
	str    string
	hit    bool
	items  map[string]*Item
	stats  map[string]string
}

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{done: make(chan struct{}, 1), timer: t}
}}

func getCall() *call { return callPool.Get().(*call) }

func putCall(c *call) {
	done, timer := c.done, c.timer
	*c = call{done: done, timer: timer}
	callPool.Put(c)
}

// mconn is one shared connection.
type mconn struct {
	nc      net.Conn
	proto   Protocol
	maxBody int
	send    time.Duration

	mu      sync.Mutex
	wbuf    []byte
	spare   []byte
	writing bool
	opaque  uint32
	pending map[uint32]*call // binary
	queue   []*call          // text, in send order
	qhead   int
	err     error
	dead    atomic.Bool // err != nil, readable without the lock
}

func newMconn(c *Conn, proto Protocol) *mconn {
	m := &mconn{
		nc:      c.nc,
		proto:   proto,
		maxBody: c.opts.MaxValueSize,
		send:    c.send,
		pending: make(map[uint32]*call),
	}
	br := c.br
	if proto == Text {
		go m.readText(br)
	} else {
		go m.readBinary(br)
	}
	return m
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

// nextOpaque must be called with m.mu held. Zero is skipped so that a zero
// opaque in a response never matches a call.
func (m *mconn) nextOpaque() uint32 {
	m.opaque++
	if m.opaque == 0 {
		m.opaque++
	}
	return m.opaque
}

// addBinary appends req under m.mu, registering it for c. last marks the
// request that completes c.
func (m *mconn) addBinary(c *call, req *Request, last bool) {
	req.Opaque = m.nextOpaque()
	if c.first == 0 {
		c.first = req.Opaque
	}
	if last {
		c.last = req.Opaque
	}
	m.pending[req.Opaque] = c
	m.wbuf = AppendRequest(m.wbuf, req)
}

// addText queues c for the reply to the command already appended to m.wbuf.
func (m *mconn) addText(c *call) {
	m.queue = append(m.queue, c)
}

// commit unlocks m and writes the buffer unless another caller is writing.
func (m *mconn) commit() {
	if m.writing {
		m.mu.Unlock()
		return
	}
	m.writing = true
	for {
		out := m.wbuf
		m.wbuf = m.spare[:0]
		m.mu.Unlock()
		m.nc.SetWriteDeadline(time.Now().Add(m.send)) //nolint:errcheck
		_, err := m.nc.Write(out)
		m.mu.Lock()
		m.spare = out[:0]
		if err != nil {
			m.writing = false
			m.mu.Unlock()
			m.fail(wrapNetErr(err))
			return
		}
		if len(m.wbuf) == 0 || m.err != nil {
			m.writing = false
			m.mu.Unlock()
			return
		}
	}
}

// wait blocks until c completes or the timeout passes; a timeout closes m,
// because the reply may still come and would be read as another's.
func (m *mconn) wait(c *call, timeout time.Duration) error {
	c.timer.Reset(timeout)
	select {
	case <-c.done:
		c.timer.Stop()
	case <-c.timer.C:
		m.fail(&timeoutError{fmt.Errorf("no reply within %v", timeout)})
		<-c.done
	}
	return c.err
}

// fail closes m with err (the first error wins); the reader then completes
// every pending call with it.
func (m *mconn) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.dead.Store(true)
	m.mu.Unlock()
	m.nc.Close() //nolint:errcheck // closing unblocks the reader
}

// drain is the reader's exit: it records err and completes every call left.
func (m *mconn) drain(err error) {
	m.nc.Close() //nolint:errcheck
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.dead.Store(true)
	err = m.err
	var calls []*call
	seen := make(map[*call]bool)
	for _, c := range m.pending {
		if !seen[c] {
			seen[c] = true
			calls = append(calls, c)
		}
	}
	clear(m.pending)
	calls = append(calls, m.queue[m.qhead:]...)
	m.queue, m.qhead = nil, 0
	m.mu.Unlock()
	for _, c := range calls {
		c.err = err
		c.done <- struct{}{}
	}
}

func (m *mconn) readBinary(br *bufio.Reader) {
	var resp Response
	for {
		if err := ReadResponse(br, &resp, m.maxBody); err != nil {
			m.drain(wrapNetErr(err))
			return
		}
		m.mu.Lock()
		c := m.pending[resp.Opaque]
		if c == nil {
			m.mu.Unlock()
			m.drain(fmt.Errorf("%w: response with unknown opaque %d (%s)", ErrProtocol, resp.Opaque, resp.Opcode))
			return
		}
		terminal := resp.Opaque == c.last && (!c.statMulti || len(resp.Key) == 0 || resp.Status != StatusNoError)
		if terminal {
			for o := c.first; ; o++ {
				delete(m.pending, o)
				if o == c.last {
					break
				}
			}
		} else if resp.Opaque != c.last {
			delete(m.pending, resp.Opaque)
		}
		m.mu.Unlock()
		c.takeBinary(&resp, terminal)
		if terminal {
			c.done <- struct{}{}
		}
	}
}

// takeBinary records one response of c.
func (c *call) takeBinary(r *Response, terminal bool) {
	if !terminal {
		switch {
		case c.statMulti:
			c.stats[string(r.Key)] = string(r.Value)
		case r.Status != StatusNoError:
			// A quiet request's only answer is its failure: the first one is
			// the batch's error.
			if c.err == nil {
				c.err = r.Err()
			}
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

func (m *mconn) readText(br *bufio.Reader) {
	var v TextValue
	for {
		// Block for the first byte of a reply before looking at the queue, so
		// that an idle connection costs no lock traffic.
		if _, err := br.Peek(1); err != nil {
			m.drain(wrapNetErr(err))
			return
		}
		m.mu.Lock()
		if m.qhead == len(m.queue) {
			m.mu.Unlock()
			m.drain(fmt.Errorf("%w: unsolicited text reply", ErrProtocol))
			return
		}
		c := m.queue[m.qhead]
		m.mu.Unlock()
		fatal := c.readText(br, &v, m.maxBody)
		if fatal != nil {
			// c is still queued: drain completes it with the error.
			m.drain(wrapNetErr(fatal))
			return
		}
		m.mu.Lock()
		m.queue[m.qhead] = nil
		m.qhead++
		if m.qhead == len(m.queue) {
			m.queue, m.qhead = m.queue[:0], 0
		}
		m.mu.Unlock()
		c.done <- struct{}{}
	}
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
