package server

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"luaserve/memcached"
)

const (
	readBufSize = 16 << 10
	// maxTextLine is how long a text line may get before a newline: memcached
	// closes the connection past 2048 bytes unless the line is a get.
	maxTextLine = 2048
	// maxGetLine bounds a multi-key get line; memcached grows its buffer
	// without limit, we stop at a size no sane client reaches.
	maxGetLine = 4 << 20
	// reqsPerEvent is memcached's -R default.
	reqsPerEvent = 20
)

// action tells the connection loop what to do after processing.
type action int

const (
	actMore  action = iota // flush, then read more input
	actQuit                // flush, then close
	actClose               // close without flushing
)

// pending is a storage (or SASL) command whose value has not fully
// arrived; for binary ones conn.pendHdr keeps the request header.
type pending struct {
	active  bool
	mode    storeMode
	opcode  memcached.Opcode // binary only
	noreply bool
	key     []byte // into keyBuf
	flags   uint32
	exp     int64
	cas     uint64
	vlen    int // value bytes, plus 2 for text's "\r\n"
}

type conn struct {
	s       *Server
	nc      net.Conn
	id      int
	lastCmd atomic.Int64 // unix seconds

	buf  []byte // read buffer; buf[r:w] is unprocessed
	r, w int
	out  []byte

	// A command that swallows its body (too large) answers only once the
	// body is gone, as memcached does: its reply waits in deferred.
	swallow  int64
	deferred []byte

	pend    pending
	pendHdr reqHeader
	keyBuf  [memcached.MaxKeyLen]byte

	nreq       int
	nreqMax    int
	flushNow   bool
	negotiated bool
	binary     bool
	authed     bool
	saslStart  bool

	// refs are items whose values sit in unsent replies. memcached keeps
	// a reference on them until the reply is written, which stops incr
	// from rewriting them in place; held reproduces that.
	refs []*item

	toks [maxTokens - 1][]byte
	num  [24]byte
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, buf: make([]byte, readBufSize), out: make([]byte, 0, 4096), nreqMax: reqsPerEvent + 1}
	c.lastCmd.Store(time.Now().Unix())
	return c
}

func (c *conn) serve() {
	c.s.currConns.Add(1)
	c.s.totalConns.Add(1)
	defer func() {
		c.s.currConns.Add(-1)
		c.nc.Close()
	}()
	for {
		var act action
		if c.r < c.w {
			c.lastCmd.Store(time.Now().Unix())
			act = c.process()
		}
		if act == actClose {
			return
		}
		if c.flush() != nil {
			return
		}
		if act == actQuit {
			return
		}
		if err := c.fill(); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				c.s.logf("memcached/server: %v", err)
			}
			return
		}
	}
}

// held reports whether it is referenced by an unsent reply; called with
// the store locked.
func (c *conn) held(it *item) bool {
	for _, r := range c.refs {
		if r == it {
			return true
		}
	}
	return false
}

func (c *conn) flush() error {
	clear(c.refs)
	c.refs = c.refs[:0]
	if len(c.out) == 0 {
		return nil
	}
	n, err := c.nc.Write(c.out)
	c.s.bytesWrit.Add(uint64(n))
	if cap(c.out) > 1<<20 {
		c.out = make([]byte, 0, 4096)
	} else {
		c.out = c.out[:0]
	}
	return err
}

// need is how many unprocessed bytes the current command waits for, so
// fill can make room for a whole value at once.
func (c *conn) need() int {
	if c.pend.active {
		return c.pend.vlen
	}
	return 0
}

func (c *conn) fill() error {
	c.nreq, c.nreqMax = 0, reqsPerEvent+1
	if c.r == c.w {
		c.r, c.w = 0, 0
		if len(c.buf) > readBufSize*4 && !c.pend.active {
			c.buf = make([]byte, readBufSize)
		}
	} else if c.r > 0 && c.w == len(c.buf) {
		n := copy(c.buf, c.buf[c.r:c.w])
		c.r, c.w = 0, n
	}
	if c.w == len(c.buf) {
		// Grow only with data actually received, so a request that merely
		// announces a large value costs nothing until the value comes.
		limit := maxGetLine + readBufSize
		if need := c.need(); need > 0 {
			limit = need
		}
		if len(c.buf) >= limit {
			return errors.New("memcached/server: request too long")
		}
		nb := make([]byte, min(2*len(c.buf), limit))
		c.w = copy(nb, c.buf[c.r:c.w])
		c.r = 0
		c.buf = nb
	}
	n, err := c.nc.Read(c.buf[c.w:])
	c.w += n
	c.s.bytesRead.Add(uint64(n))
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// process handles every complete request in the buffer.
func (c *conn) process() action {
	if !c.negotiated {
		c.negotiated = true
		c.binary = c.buf[c.r] == memcached.MagicRequest || c.s.cfg.sasl()
	}
	for c.r < c.w {
		if c.swallow > 0 {
			n := int64(c.w - c.r)
			if n > c.swallow {
				n = c.swallow
			}
			c.r += int(n)
			c.swallow -= n
			if c.swallow > 0 {
				return actMore
			}
			c.out = append(c.out, c.deferred...)
			c.deferred = c.deferred[:0]
			continue
		}
		var act action
		var ok bool
		if c.binary {
			act, ok = c.binaryStep()
		} else {
			act, ok = c.textStep()
		}
		if !ok {
			return act
		}
		// Like memcached, answer every 20 requests (reqs_per_event) and
		// after every get even when more requests are buffered; this
		// decides what a later error may discard from the queue.
		if c.nreq++; c.nreq >= c.nreqMax || c.flushNow {
			if c.nreq >= c.nreqMax {
				// memcached runs one more request in the event that read
				// the data than in the events that follow a yield.
				c.nreq, c.nreqMax = 0, reqsPerEvent
			}
			c.flushNow = false
			if c.flush() != nil {
				return actClose
			}
		}
	}
	return actMore
}

// swallowFrom discards the next n bytes of input and holds back the reply
// written to c.out since mark until they are gone.
func (c *conn) swallowFrom(mark int, n int64) {
	if n <= 0 {
		return
	}
	c.swallow = n
	c.deferred = append(c.deferred[:0], c.out[mark:]...)
	c.out = c.out[:mark]
}
