package luabind

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"luaserve/memcached"
)

// The async half of the session API: send/receive and batch.

// bmemArgs are the fields of a send/batch opts table.
type bmemArgs struct {
	key            string
	hasKey         bool
	value          []byte
	hasValue       bool
	expire         uint32
	cas            uint64
	delta, initial uint64
}

// bmemTableArgs reads opts (key, value, expire, cas, and for counters
// delta/increment/decrement and initial); bad types are raised.
func bmemTableArgs(L *lua.LState, opts *lua.LTable, where string) bmemArgs {
	a := bmemArgs{delta: 1}
	if opts == nil {
		return a
	}
	switch v := opts.RawGetString("key").(type) {
	case lua.LString:
		a.key, a.hasKey = string(v), len(v) > 0
	case lua.LNumber:
		a.key, a.hasKey = v.String(), true
	case *lua.LNilType:
	default:
		L.RaiseError("%s: key must be a string or a number, got %s", where, v.Type())
	}
	switch v := opts.RawGetString("value").(type) {
	case lua.LString, lua.LNumber:
		L.Push(v)
		a.value, a.hasValue = bmemArgValue(L, L.GetTop())
		L.Pop(1)
	case *lua.LNilType:
	default:
		L.RaiseError("%s: value must be a string or a number, got %s", where, v.Type())
	}
	num := func(name string, max float64) (float64, bool) {
		switch v := opts.RawGetString(name).(type) {
		case lua.LNumber:
			if v < 0 || float64(v) > max {
				L.RaiseError("%s: %s out of range", where, name)
			}
			return float64(v), true
		case *lua.LNilType:
			return 0, false
		default:
			L.RaiseError("%s: %s must be a number, got %s", where, name, v.Type())
		}
		return 0, false
	}
	if n, ok := num("expire", 0xffffffff); ok {
		a.expire = uint32(n)
	}
	for _, name := range [...]string{"delta", "increment", "decrement"} {
		if n, ok := num(name, 1<<64-1); ok {
			a.delta = uint64(n)
		}
	}
	if n, ok := num("initial", 1<<64-1); ok {
		a.initial = uint64(n)
	}
	cas, ok := bmemCASValue(opts.RawGetString("cas"))
	if !ok {
		L.RaiseError("%s: cas must be the header.CAS array of an earlier result", where)
	}
	a.cas = cas
	return a
}

// bmemBuild makes the request for op from a, appending its extras to
// extras; the message says what is missing or wrong.
func bmemBuild(op memcached.Opcode, a *bmemArgs, extras []byte) (memcached.Request, string) {
	req := memcached.Request{Opcode: op, Key: a.key, CAS: a.cas}
	needKey, needValue := true, false
	switch op {
	case memcached.OpSet, memcached.OpAdd, memcached.OpReplace, memcached.OpSetQ, memcached.OpAddQ, memcached.OpReplaceQ:
		needValue = true
		req.Extras = memcached.AppendStoreExtras(extras, 0, a.expire)
	case memcached.OpAppend, memcached.OpPrepend, memcached.OpAppendQ, memcached.OpPrependQ,
		memcached.OpSASLAuth, memcached.OpSASLStep:
		needValue = true
	case memcached.OpGet, memcached.OpGetK, memcached.OpGetQ, memcached.OpGetKQ,
		memcached.OpDelete, memcached.OpDeleteQ:
	case memcached.OpIncrement, memcached.OpDecrement, memcached.OpIncrementQ, memcached.OpDecrementQ:
		req.Extras = memcached.AppendCounterExtras(extras, a.delta, a.initial, a.expire)
	case memcached.OpTouch, memcached.OpGAT, memcached.OpGATQ, memcached.OpGATK, memcached.OpGATKQ:
		req.Extras = memcached.AppendExpiryExtras(extras, a.expire)
	case memcached.OpFlush, memcached.OpFlushQ:
		needKey = false
		req.Key = ""
		if a.expire != 0 {
			req.Extras = memcached.AppendExpiryExtras(extras, a.expire)
		}
	case memcached.OpVerbosity:
		needKey = false
		req.Key = ""
		req.Extras = memcached.AppendVerbosityExtras(extras, a.expire)
	case memcached.OpStat:
		needKey = false
	case memcached.OpNoop, memcached.OpVersion, memcached.OpSASLList, memcached.OpQuit, memcached.OpQuitQ:
		needKey = false
		req.Key = ""
	default:
		return req, fmt.Sprintf("unknown op code %d", op)
	}
	if needValue {
		req.Value = a.value
		if !a.hasKey || !a.hasValue {
			return req, "key and value required"
		}
	} else if needKey && !a.hasKey {
		return req, "key required"
	}
	if len(req.Key) > memcached.MaxKeyLen {
		return req, fmt.Sprintf("key longer than %d bytes", memcached.MaxKeyLen)
	}
	return req, ""
}

func bmemArgOp(L *lua.LState, v lua.LValue, where string) memcached.Opcode {
	n, ok := v.(lua.LNumber)
	if !ok || n < 0 || n > 255 || float64(n) != float64(int(n)) {
		L.RaiseError("%s: op must be a constant from op_code, got %s", where, L.ToStringMeta(v).String())
	}
	return memcached.Opcode(n)
}

// send sends one request of any op and answers {peer, header = {opaque}}.
func (m *bmem) send(L *lua.LState) int {
	s := bmemCheckSession(L, "send")
	op := bmemArgOp(L, L.Get(2), "send")
	a := bmemTableArgs(L, L.OptTable(3, nil), "send")
	req, msg := bmemBuild(op, &a, m.extras[:0])
	if msg != "" {
		L.RaiseError("send: %s", msg)
	}
	idx := 0
	if req.Key != "" && op != memcached.OpStat {
		var err error
		if idx, err = s.b.cl.pick(req.Key); err != nil {
			L.RaiseError("bmemcached: send: no server for key: %s", err.Error())
		}
	}
	bc := s.conn(L, idx)
	req.Opaque = m.nextOpaque()
	bc.send(L, &req)
	L.Push(bc.ticket(L, req.Opaque))
	return 1
}

// receive reads responses of a peer's connection: the one for opts.opaque,
// up to opts.limit of them, or (neither) every response before a Noop.
func (m *bmem) receive(L *lua.LState) int {
	s := bmemCheckSession(L, "receive")
	bc := s.peerConn(L, L.Get(2))
	opts := L.OptTable(3, nil)
	var opaque, limit lua.LValue = lua.LNil, lua.LNil
	if opts != nil {
		opaque, limit = opts.RawGetString("opaque"), opts.RawGetString("limit")
	}
	send, read, _ := m.timeouts(s.b)
	if send <= 0 {
		L.RaiseError("bmemcached: %s: timeout (the request's deadline has passed)", bc.pool.Addr())
	}
	bc.c.SetTimeouts(send, read)
	switch {
	case opaque != lua.LNil:
		n, ok := opaque.(lua.LNumber)
		if !ok {
			L.RaiseError("receive: opts.opaque must be the header.opaque of send, got %s", opaque.Type())
		}
		L.Push(bc.receiveOpaque(L, uint32(n)))
	case limit != lua.LNil:
		n, ok := limit.(lua.LNumber)
		if !ok || n < 1 {
			L.RaiseError("receive: opts.limit must be a positive number")
		}
		L.Push(bc.receiveLimit(L, int(n)))
	default:
		bc.drain(L)
		out := L.CreateTable(len(bc.stash), 0)
		for _, st := range bc.stash {
			out.Append(st.t)
		}
		clear(bc.stash)
		bc.stash = bc.stash[:0]
		L.Push(out)
	}
	return 1
}

// peerConn resolves a peer table (w.peer) to the session's live connection.
func (s *bmemSession) peerConn(L *lua.LState, v lua.LValue) *bmemConn {
	if t, ok := v.(*lua.LTable); ok {
		if ud, ok := t.RawGetInt(1).(*lua.LUserData); ok {
			if bc, ok := ud.Value.(*bmemConn); ok {
				if bc.s != s {
					L.RaiseError("receive: peer belongs to another session")
				}
				if bc.c == nil {
					L.RaiseError("receive: peer %s is no longer open in this session (released by setkeepalive/close, or by an error)", lua.LVAsString(t.RawGetInt(2)))
				}
				return bc
			}
		}
	}
	L.RaiseError("bad argument #1 to 'receive' (peer expected: the peer field of a send or quiet call, got %s)", v.Type())
	return nil
}

// receiveOpaque answers the response to opaque, or nil when the request
// was quiet and succeeded (the server sends nothing then).
func (bc *bmemConn) receiveOpaque(L *lua.LState, opaque uint32) lua.LValue {
	for {
		for i, st := range bc.stash {
			if st.opaque == opaque {
				bc.stash = append(bc.stash[:i], bc.stash[i+1:]...)
				return st.t
			}
		}
		switch {
		case bc.expect > 0:
			resp := bc.read(L)
			if resp.Opaque == opaque && !(resp.Opcode == memcached.OpStat && len(resp.Key) > 0) {
				return bc.s.m.result(L, resp)
			}
			bc.keep(L, resp)
		case bc.unsettled > 0:
			bc.drain(L)
		default:
			for i, st := range bc.stash {
				if st.opaque == opaque {
					bc.stash = append(bc.stash[:i], bc.stash[i+1:]...)
					return st.t
				}
			}
			return lua.LNil
		}
	}
}

// receiveLimit answers up to limit responses: stashed ones, those still
// owed, then any quiet failures a Noop flushes out.
func (bc *bmemConn) receiveLimit(L *lua.LState, limit int) *lua.LTable {
	out := L.CreateTable(min(limit, 64), 0)
	take := func() {
		n := min(limit-out.Len(), len(bc.stash))
		for _, st := range bc.stash[:n] {
			out.Append(st.t)
		}
		rest := copy(bc.stash, bc.stash[n:])
		clear(bc.stash[rest:])
		bc.stash = bc.stash[:rest]
	}
	take()
	for out.Len() < limit && bc.expect > 0 {
		out.Append(bc.s.m.result(L, bc.read(L)))
	}
	if out.Len() < limit && bc.unsettled > 0 {
		bc.drain(L)
		take()
	}
	return out
}

// Batch defaults when opts leave them out.
const (
	bmemDefaultWindow  = 8
	bmemDefaultThreads = 1
	bmemMaxThreads     = 64
)

type bmemBatchItem struct {
	req  memcached.Request
	srv  int
	wk   int  // the worker that runs it
	done bool // a response arrived
	hdr  memcached.Header
	key  []byte
	val  []byte
}

// batch runs every {op, opts} of b, unacked_window requests in flight per
// connection and thread_pool_size connections per server working in
// parallel, and sets result on each item. Quiet requests that succeed get a
// "No error" result (the server sends nothing for them). Items whose
// connection failed get no result, and the first such error is raised once
// every other item is done.
func (m *bmem) batch(L *lua.LState) int {
	s := bmemCheckSession(L, "batch")
	b := L.CheckTable(2)
	opts := L.OptTable(3, nil)
	window, threads := bmemDefaultWindow, bmemDefaultThreads
	if opts != nil {
		if v, ok := opts.RawGetString("unacked_window").(lua.LNumber); ok && v >= 1 {
			window = int(v)
		}
		if v, ok := opts.RawGetString("thread_pool_size").(lua.LNumber); ok && v >= 1 {
			threads = min(int(v), bmemMaxThreads)
		}
	}
	n := b.Len()
	if n == 0 {
		return 0
	}
	items := make([]bmemBatchItem, n)
	extras := make([]byte, 0, 20*n) // never regrown: items keep slices of it
	for i := range items {
		where := fmt.Sprintf("batch: item %d", i+1)
		it, ok := b.RawGetInt(i + 1).(*lua.LTable)
		if !ok {
			L.RaiseError("%s must be a table { op = …, opts = { … } }", where)
		}
		op := bmemArgOp(L, it.RawGetString("op"), where)
		var o *lua.LTable
		switch v := it.RawGetString("opts").(type) {
		case *lua.LTable:
			o = v
		case *lua.LNilType:
		default:
			L.RaiseError("%s: opts must be a table, got %s", where, v.Type())
		}
		a := bmemTableArgs(L, o, where)
		start := len(extras)
		req, msg := bmemBuild(op, &a, extras)
		if msg != "" {
			L.RaiseError("%s: %s", where, msg)
		}
		if req.Extras != nil {
			// bmemBuild appended to extras: keep the whole, hand the item
			// its own part.
			extras = req.Extras
			req.Extras = extras[start:len(extras):len(extras)]
		}
		srv := 0
		if req.Key != "" && op != memcached.OpStat {
			var err error
			if srv, err = s.b.cl.pick(req.Key); err != nil {
				L.RaiseError("bmemcached: %s: no server for key: %s", where, err.Error())
			}
		}
		items[i] = bmemBatchItem{req: req, srv: srv}
	}
	threads = min(threads, n)
	for i := range items {
		// Items with the same key go to the same worker, so they run in
		// the order given even when workers run in parallel.
		items[i].wk = int(memcached.KetamaHash(items[i].req.Key) % uint32(threads))
	}
	// One block of opaques, so a response names its item.
	if m.opaque > ^uint32(0)-uint32(n)-1 {
		m.opaque = 0
	}
	base := m.opaque + 1
	m.opaque += uint32(n)
	for i := range items {
		items[i].req.Opaque = base + uint32(i)
	}
	send, read, ctx := m.timeouts(s.b)
	if send <= 0 {
		L.RaiseError("bmemcached: batch: timeout (the request's deadline has passed)")
	}
	w := bmemWorker{b: s.b, items: items, base: base, window: window, send: send, read: read, ctx: ctx}
	errs := make([]error, threads)
	var wg sync.WaitGroup
	for t := 1; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[t] = w.run(t)
		}()
	}
	errs[0] = w.run(0)
	wg.Wait()
	// A worker that ended cleanly settled all of its items; one that
	// failed left the unanswered ones without a result.
	for i := range items {
		it := &items[i]
		failed := errs[it.wk] != nil
		if !it.done && (failed || !it.req.Opcode.Quiet()) {
			continue
		}
		resp := memcached.Response{Header: it.hdr, Key: it.key, Value: it.val}
		if !it.done {
			resp.Header = memcached.Header{Magic: memcached.MagicResponse, Opcode: it.req.Opcode, Opaque: it.req.Opaque}
		}
		if t, ok := b.RawGetInt(i + 1).(*lua.LTable); ok {
			t.RawSetString("result", m.result(L, &resp))
		}
	}
	if err := errors.Join(errs...); err != nil {
		L.RaiseError("bmemcached: batch: %s", err.Error())
	}
	return 0
}

// bmemWorker runs a batch's items with its own pooled connections; its
// methods are safe to run in parallel for different worker numbers.
type bmemWorker struct {
	b          *bmemBucket
	items      []bmemBatchItem
	base       uint32
	window     int
	send, read time.Duration
	ctx        context.Context
}

// run handles the items of worker k and returns its connections to the
// pool once nothing is outstanding on them.
func (w *bmemWorker) run(k int) (err error) {
	conns := make([]*memcached.Conn, len(w.b.pools))
	inflight := make([]int, len(w.b.pools))
	quiet := make([]bool, len(w.b.pools))
	var resp memcached.Response
	defer func() {
		for srv, c := range conns {
			if c == nil {
				continue
			}
			if err == nil {
				w.b.pools[srv].Put(c, w.b.poolIdle, w.b.poolSize)
			} else {
				c.Close() //nolint:errcheck // abandoned after an error
			}
		}
	}()
	// readOne reads the next response on srv and files it with its item.
	readOne := func(srv int) (bool, error) {
		c := conns[srv]
		if err := c.Receive(&resp); err != nil {
			return false, fmt.Errorf("%s: %w", c.Addr(), err)
		}
		if resp.Opcode == memcached.OpNoop && resp.Opaque == 0 {
			return true, nil
		}
		i := resp.Opaque - w.base
		if int(i) >= len(w.items) {
			return false, fmt.Errorf("%s: %w: response for opaque %d that was not sent", c.Addr(), memcached.ErrProtocol, resp.Opaque)
		}
		it := &w.items[i]
		if resp.Opcode == memcached.OpStat && resp.Status == memcached.StatusNoError && len(resp.Key) > 0 {
			return false, nil // a stat entry; the item keeps its terminator
		}
		it.done, it.hdr = true, resp.Header
		it.key = append([]byte(nil), resp.Key...)
		it.val = append([]byte(nil), resp.Value...)
		if !resp.Opcode.Quiet() {
			inflight[srv]--
		}
		return false, nil
	}
	for i := range w.items {
		it := &w.items[i]
		if it.wk != k {
			continue
		}
		srv := it.srv
		if conns[srv] == nil {
			c, err := w.b.pools[srv].Get(w.ctx)
			if err != nil {
				return fmt.Errorf("%s", bmemErrorText(w.b.pools[srv].Addr(), err))
			}
			c.SetTimeouts(w.send, w.read)
			conns[srv] = c
		}
		if err := conns[srv].Send(&it.req); err != nil {
			return fmt.Errorf("%s: %w", conns[srv].Addr(), err)
		}
		if it.req.Opcode.Quiet() {
			quiet[srv] = true
			continue
		}
		inflight[srv]++
		for inflight[srv] >= w.window {
			if _, err := readOne(srv); err != nil {
				return err
			}
		}
	}
	for srv, c := range conns {
		if c == nil || (inflight[srv] == 0 && !quiet[srv]) {
			continue
		}
		// Opaque 0 is never an item's: the Noop marks the end.
		if err := c.Send(&memcached.Request{Opcode: memcached.OpNoop}); err != nil {
			return fmt.Errorf("%s: %w", c.Addr(), err)
		}
		for {
			end, err := readOne(srv)
			if err != nil {
				return err
			}
			if end {
				break
			}
		}
	}
	return nil
}
