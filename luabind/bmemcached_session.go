package luabind

import (
	"context"
	"errors"
	"time"
	"unsafe"

	lua "github.com/yuin/gopher-lua"

	"luaserve/memcached"
)

// bmemSession owns the connections it opened (one per server touched) until
// setkeepalive pools them or close closes them; whatever a handler forgets
// is released when its request ends.
type bmemSession struct {
	m     *bmem
	b     *bmemBucket
	conns []*bmemConn // by server index; nil where not open
	one   [1]*bmemConn
	// shared marks the servers whose sync ops went through the bucket's
	// shared transport since the session last let go of its connections:
	// noop answers for them as for an open connection.
	shared    []bool
	sharedOne [1]bool
	hooked    bool // to be released when the current request ends
}

// bmemConn is one of a session's connections and the bookkeeping that says
// whether it is clean: what was sent and not yet answered, and responses
// read but not yet handed to Lua.
type bmemConn struct {
	s    *bmemSession
	idx  int
	c    *memcached.Conn
	pool *memcached.Pool
	// expect counts non-quiet requests whose response has not been read (a
	// Stat counts until its terminating empty-key packet).
	expect int
	// unsettled counts quiet requests sent since the last non-quiet
	// response: a failure of any of them may still arrive.
	unsettled int
	// stash holds responses read while waiting for another one, in arrival
	// order, for a later receive.
	stash []bmemStashed
	peer  *lua.LTable // {sock, pool}, made on first quiet or async use
}

type bmemStashed struct {
	opaque uint32
	t      *lua.LTable
}

func (m *bmem) sessionMethods() map[string]lua.LGFunction {
	methods := map[string]lua.LGFunction{
		"set":          m.storeOp(memcached.OpSet, "set", true),
		"add":          m.storeOp(memcached.OpAdd, "add", false),
		"replace":      m.storeOp(memcached.OpReplace, "replace", true),
		"setQ":         m.storeOp(memcached.OpSetQ, "setQ", true),
		"addQ":         m.storeOp(memcached.OpAddQ, "addQ", false),
		"replaceQ":     m.storeOp(memcached.OpReplaceQ, "replaceQ", true),
		"append":       m.concatOp(memcached.OpAppend, "append"),
		"prepend":      m.concatOp(memcached.OpPrepend, "prepend"),
		"appendQ":      m.concatOp(memcached.OpAppendQ, "appendQ"),
		"prependQ":     m.concatOp(memcached.OpPrependQ, "prependQ"),
		"get":          m.keyOp(memcached.OpGet, "get"),
		"getK":         m.keyOp(memcached.OpGetK, "getK"),
		"touch":        m.expiryOp(memcached.OpTouch, "touch"),
		"gat":          m.expiryOp(memcached.OpGAT, "gat"),
		"delete":       m.deleteOp(memcached.OpDelete, "delete"),
		"deleteQ":      m.deleteOp(memcached.OpDeleteQ, "deleteQ"),
		"increment":    m.counterOp(memcached.OpIncrement, "increment"),
		"decrement":    m.counterOp(memcached.OpDecrement, "decrement"),
		"incrementQ":   m.counterOp(memcached.OpIncrementQ, "incrementQ"),
		"decrementQ":   m.counterOp(memcached.OpDecrementQ, "decrementQ"),
		"version":      m.serverOp(memcached.OpVersion, "version"),
		"sasl_list":    m.serverOp(memcached.OpSASLList, "sasl_list"),
		"stat":         m.stat,
		"noop":         m.noop,
		"flush":        m.flush,
		"close":        m.closeSession,
		"setkeepalive": m.setKeepalive,
		"send":         m.send,
		"receive":      m.receive,
		"batch":        m.batch,
		"query":        m.query,
	}
	return methods
}

func bmemCheckSession(L *lua.LState, method string) *bmemSession {
	return bmemCheckUD[*bmemSession](L, "session", method)
}

// bmemArgKey returns argument n as a key: a string, or a number written as Lua
// writes it.
func bmemArgKey(L *lua.LState, n int) (string, bool) {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return string(v), len(v) > 0
	case lua.LNumber:
		return v.String(), true
	}
	return "", false
}

// bmemArgValue returns argument n as bytes. A string is not copied: the bytes
// are only read, into the connection's write buffer.
func bmemArgValue(L *lua.LState, n int) ([]byte, bool) {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return unsafe.Slice(unsafe.StringData(string(v)), len(v)), true
	case lua.LNumber:
		return []byte(v.String()), true
	}
	return nil, false
}

func bmemArgExpire(L *lua.LState, n int, method string) uint32 {
	switch v := L.Get(n).(type) {
	case *lua.LNilType:
		return 0
	case lua.LNumber:
		if v < 0 || v > 0xffffffff {
			L.RaiseError("bad argument #%d to '%s' (expire out of range)", n-1, method)
		}
		return uint32(v)
	default:
		L.RaiseError("bad argument #%d to '%s' (expire must be a number, got %s)", n-1, method, v.Type())
	}
	return 0
}

func bmemArgUint64(L *lua.LState, n int, method, what string, def uint64) uint64 {
	switch v := L.Get(n).(type) {
	case *lua.LNilType:
		return def
	case lua.LNumber:
		if v < 0 || float64(v) >= 1<<64 {
			L.RaiseError("bad argument #%d to '%s' (%s out of range)", n-1, method, what)
		}
		return uint64(v)
	default:
		L.RaiseError("bad argument #%d to '%s' (%s must be a number, got %s)", n-1, method, what, v.Type())
	}
	return 0
}

// bmemCASValue decodes a CAS argument: the 8-byte header.CAS array of an earlier
// result (or a plain number).
func bmemCASValue(v lua.LValue) (uint64, bool) {
	switch v := v.(type) {
	case *lua.LNilType:
		return 0, true
	case lua.LNumber:
		return uint64(v), v >= 0
	case *lua.LTable:
		var cas uint64
		for i := 1; i <= 8; i++ {
			b, ok := v.RawGetInt(i).(lua.LNumber)
			if !ok || b < 0 || b > 255 {
				return 0, false
			}
			cas = cas<<8 | uint64(b)
		}
		return cas, v.RawGetInt(9) == lua.LNil
	}
	return 0, false
}

func bmemArgCAS(L *lua.LState, n int, method string) uint64 {
	cas, ok := bmemCASValue(L.Get(n))
	if !ok {
		L.RaiseError("bad argument #%d to '%s' (cas must be the header.CAS array of an earlier result)", n-1, method)
	}
	return cas
}

func (m *bmem) storeOp(op memcached.Opcode, name string, withCAS bool) lua.LGFunction {
	return func(L *lua.LState) int {
		s := bmemCheckSession(L, name)
		key, ok1 := bmemArgKey(L, 2)
		value, ok2 := bmemArgValue(L, 3)
		if !ok1 || !ok2 {
			L.RaiseError("%s: key and value required", name)
		}
		req := memcached.Request{Opcode: op, Key: key, Value: value,
			Extras: memcached.AppendStoreExtras(m.extras[:0], 0, bmemArgExpire(L, 4, name))}
		if withCAS {
			req.CAS = bmemArgCAS(L, 5, name)
		}
		return s.do(L, name, &req)
	}
}

func (m *bmem) concatOp(op memcached.Opcode, name string) lua.LGFunction {
	return func(L *lua.LState) int {
		s := bmemCheckSession(L, name)
		key, ok1 := bmemArgKey(L, 2)
		value, ok2 := bmemArgValue(L, 3)
		if !ok1 || !ok2 {
			L.RaiseError("%s: key and value required", name)
		}
		req := memcached.Request{Opcode: op, Key: key, Value: value, CAS: bmemArgCAS(L, 4, name)}
		return s.do(L, name, &req)
	}
}

// bmemSessionKey checks the session and key arguments of a keyed call.
func bmemSessionKey(L *lua.LState, name string) (*bmemSession, string) {
	s := bmemCheckSession(L, name)
	key, ok := bmemArgKey(L, 2)
	if !ok {
		L.RaiseError("%s: key required", name)
	}
	return s, key
}

func (m *bmem) keyOp(op memcached.Opcode, name string) lua.LGFunction {
	return func(L *lua.LState) int {
		s, key := bmemSessionKey(L, name)
		req := memcached.Request{Opcode: op, Key: key}
		return s.do(L, name, &req)
	}
}

func (m *bmem) expiryOp(op memcached.Opcode, name string) lua.LGFunction {
	return func(L *lua.LState) int {
		s, key := bmemSessionKey(L, name)
		req := memcached.Request{Opcode: op, Key: key,
			Extras: memcached.AppendExpiryExtras(m.extras[:0], bmemArgExpire(L, 3, name))}
		return s.do(L, name, &req)
	}
}

func (m *bmem) deleteOp(op memcached.Opcode, name string) lua.LGFunction {
	return func(L *lua.LState) int {
		s, key := bmemSessionKey(L, name)
		req := memcached.Request{Opcode: op, Key: key, CAS: bmemArgCAS(L, 3, name)}
		return s.do(L, name, &req)
	}
}

func (m *bmem) counterOp(op memcached.Opcode, name string) lua.LGFunction {
	return func(L *lua.LState) int {
		s, key := bmemSessionKey(L, name)
		delta := bmemArgUint64(L, 3, name, "delta", 1)
		initial := bmemArgUint64(L, 4, name, "initial", 0)
		req := memcached.Request{Opcode: op, Key: key,
			Extras: memcached.AppendCounterExtras(m.extras[:0], delta, initial, bmemArgExpire(L, 5, name))}
		return s.do(L, name, &req)
	}
}

// serverOp runs a keyless request on the cluster's first server.
func (m *bmem) serverOp(op memcached.Opcode, name string) lua.LGFunction {
	return func(L *lua.LState) int {
		s := bmemCheckSession(L, name)
		req := memcached.Request{Opcode: op}
		L.Push(s.call(L, 0, &req))
		return 1
	}
}

// do routes a keyed request to its server: a quiet one is sent and answered
// with its peer and opaque, any other waits for its result.
func (s *bmemSession) do(L *lua.LState, name string, req *memcached.Request) int {
	if len(req.Key) > memcached.MaxKeyLen {
		L.RaiseError("%s: key longer than %d bytes", name, memcached.MaxKeyLen)
	}
	idx, err := s.b.cl.pick(req.Key)
	if err != nil {
		L.RaiseError("bmemcached: %s: no server for key: %s", name, err.Error())
	}
	if req.Opcode.Quiet() {
		bc := s.conn(L, idx)
		req.Opaque = s.m.nextOpaque()
		bc.send(L, req)
		L.Push(bc.ticket(L, req.Opaque))
		return 1
	}
	L.Push(s.call(L, idx, req))
	return 1
}

// call sends req with opaque 0 on server idx and returns its result table.
// Until the session has a connection of its own to that server, the request
// goes on the bucket's shared transport, pipelined with every other VM's;
// once it has one (a quiet or async request made it), everything goes there,
// in order, and responses to earlier async requests read on the way are
// stashed.
func (s *bmemSession) call(L *lua.LState, idx int, req *memcached.Request) *lua.LTable {
	if s.conns[idx] == nil {
		return s.callShared(L, idx, req)
	}
	bc := s.conn(L, idx)
	req.Opaque = 0
	bc.send(L, req)
	for {
		resp := bc.read(L)
		if resp.Opaque == 0 && resp.Opcode == req.Opcode {
			return s.m.result(L, resp)
		}
		bc.keep(L, resp)
	}
}

// callShared is call on the bucket's shared transport: the same result,
// errors and log lines as on a connection of the session's own.
func (s *bmemSession) callShared(L *lua.LState, idx int, req *memcached.Request) *lua.LTable {
	m := s.m
	send, read, ctx := m.timeouts(s.b)
	mux := s.b.muxes[idx]
	if send <= 0 {
		L.RaiseError("bmemcached: %s: timeout (the request's deadline has passed)", mux.Addr())
	}
	if !s.shared[idx] {
		s.shared[idx] = true
		if !s.hooked {
			m.track(s)
		}
	}
	resp := &m.resp
	if err := mux.Do(ctx, req, resp, send, read); err != nil {
		var de *memcached.DialError
		m.logSocketError(err, errors.As(err, &de), mux.Addr())
		L.RaiseError("%s", bmemErrorText(mux.Addr(), err))
	}
	if (resp.Status == memcached.StatusAuthError || resp.Status == 0x20) &&
		resp.Opcode != memcached.OpSASLAuth && resp.Opcode != memcached.OpSASLStep {
		// The transport drops the connection: the server hangs up after this.
		L.RaiseError("Not authenticated: %s: %s (the server requires SASL: give the cluster a user and password)", mux.Addr(), string(resp.Value))
	}
	resp.Opaque = 0
	return m.result(L, resp)
}

// conn returns the session's connection to server idx, checking one out of
// the bucket's pool if needed, with timeouts bounded by the request's
// deadline.
func (s *bmemSession) conn(L *lua.LState, idx int) *bmemConn {
	send, read, ctx := s.m.timeouts(s.b)
	if send <= 0 {
		L.RaiseError("bmemcached: %s: timeout (the request's deadline has passed)", s.b.pools[idx].Addr())
	}
	bc := s.conns[idx]
	if bc == nil {
		pool := s.b.pools[idx]
		c, err := pool.Get(ctx)
		if err != nil {
			s.m.logSocketError(err, true, pool.Addr())
			L.RaiseError("%s", bmemErrorText(pool.Addr(), err))
		}
		bc = &bmemConn{s: s, idx: idx, c: c, pool: pool}
		s.conns[idx] = bc
		// Released when the request (or timer, or init phase) ends.
		if !s.hooked {
			s.m.track(s)
		}
	}
	bc.c.SetTimeouts(send, read)
	return bc
}

// timeouts returns the socket timeouts for the next call and the context of
// a dial: the bucket's timeout (else the request's lua_socket_* settings),
// cut to what is left of the request's deadline.
func (m *bmem) timeouts(b *bmemBucket) (send, read time.Duration, ctx context.Context) {
	if b.timeout > 0 {
		send, read = b.timeout, b.timeout
	} else {
		sd := m.vm.req.SocketDefaults()
		send, read = sd.SendTimeout, sd.ReadTimeout
	}
	ctx = m.vm.L.Context()
	if ctx == nil {
		return send, read, context.Background()
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return 0, 0, ctx
		}
		send, read = min(send, left), min(read, left)
	}
	return send, read, ctx
}

// send buffers req; it goes out with the next read or release, so quiet
// requests in a row share one write.
func (bc *bmemConn) send(L *lua.LState, req *memcached.Request) {
	if err := bc.trySend(req); err != nil {
		bc.fail(L, err)
	}
}

func (bc *bmemConn) trySend(req *memcached.Request) error {
	if err := bc.c.Send(req); err != nil {
		return err
	}
	if req.Opcode.Quiet() {
		bc.unsettled++
	} else {
		bc.expect++
	}
	return nil
}

// read reads the next response into the VM's response buffer.
func (bc *bmemConn) read(L *lua.LState) *memcached.Response {
	resp, err := bc.tryRead()
	if err != nil {
		bc.fail(L, err)
	}
	if (resp.Status == memcached.StatusAuthError || resp.Status == 0x20) &&
		resp.Opcode != memcached.OpSASLAuth && resp.Opcode != memcached.OpSASLStep {
		// The server wants SASL first, and hangs up after saying so.
		addr := bc.pool.Addr()
		body := string(resp.Value)
		bc.drop()
		L.RaiseError("Not authenticated: %s: %s (the server requires SASL: give the cluster a user and password)", addr, body)
	}
	return resp
}

func (bc *bmemConn) tryRead() (*memcached.Response, error) {
	resp := &bc.s.m.resp
	if err := bc.c.Receive(resp); err != nil {
		return nil, err
	}
	if !resp.Opcode.Quiet() {
		// The server answers in order: a quiet request sent before this
		// one would have failed by now.
		bc.unsettled = 0
		if !(resp.Opcode == memcached.OpStat && resp.Status == memcached.StatusNoError && len(resp.Key) > 0) {
			bc.expect--
		}
	}
	return resp, nil
}

// fail closes a connection after an I/O or protocol error and raises it.
func (bc *bmemConn) fail(L *lua.LState, err error) {
	addr := bc.pool.Addr()
	bc.drop()
	bc.s.m.logSocketError(err, false, addr)
	L.RaiseError("%s", bmemErrorText(addr, err))
}

// drop closes the connection and forgets it.
func (bc *bmemConn) drop() {
	bc.c.Close() //nolint:errcheck // dropping a connection we no longer trust
	bc.detach()
}

func (bc *bmemConn) detach() {
	if bc.s.conns[bc.idx] == bc {
		bc.s.conns[bc.idx] = nil
	}
	bc.c = nil
	bc.stash = nil
}

// keep stashes a response for a later receive.
func (bc *bmemConn) keep(L *lua.LState, resp *memcached.Response) {
	bc.stash = append(bc.stash, bmemStashed{resp.Opaque, bc.s.m.result(L, resp)})
}

// drain sends a Noop and reads up to its response, stashing everything that
// came before: afterwards nothing is outstanding on the connection.
func (bc *bmemConn) drain(L *lua.LState) {
	if err := bc.tryDrain(L); err != nil {
		bc.fail(L, err)
	}
}

func (bc *bmemConn) tryDrain(L *lua.LState) error {
	opaque := bc.s.m.nextOpaque()
	if err := bc.trySend(&memcached.Request{Opcode: memcached.OpNoop, Opaque: opaque}); err != nil {
		return err
	}
	for {
		resp, err := bc.tryRead()
		if err != nil {
			return err
		}
		if resp.Opcode == memcached.OpNoop && resp.Opaque == opaque {
			return nil
		}
		bc.keep(L, resp)
	}
}

// ticket is what quiet and async requests answer: the peer and the opaque
// to match the response with.
func (bc *bmemConn) ticket(L *lua.LState, opaque uint32) *lua.LTable {
	h := L.CreateTable(0, 1)
	h.RawSetString("opaque", lua.LNumber(opaque))
	t := L.CreateTable(0, 2)
	t.RawSetString("peer", bc.peerTable(L))
	t.RawSetString("header", h)
	return t
}

func (bc *bmemConn) peerTable(L *lua.LState) *lua.LTable {
	if bc.peer == nil {
		ud := L.NewUserData()
		ud.Value = bc
		ud.Metatable = bc.s.m.connMT
		// Both forms: unpack(w.peer) as the examples do, and peer.sock /
		// peer.pool as the document prints it.
		bc.peer = L.CreateTable(2, 2)
		bc.peer.RawSetInt(1, ud)
		bc.peer.RawSetInt(2, bc.s.b.peerNames[bc.idx])
		bc.peer.RawSetString("sock", ud)
		bc.peer.RawSetString("pool", bc.s.b.peerNames[bc.idx])
	}
	return bc.peer
}

// result builds {header = {opaque, CAS, status_code, status, type}, key,
// value}, keys inserted in that order so cjson.encode prints them so.
func (m *bmem) result(L *lua.LState, resp *memcached.Response) *lua.LTable {
	header := m.header(L, resp)
	var value lua.LValue
	switch {
	case resp.Status != memcached.StatusNoError:
		if len(resp.Value) > 0 {
			value = lua.LString(resp.Value)
		}
	case bmemIsCounterOp(resp.Opcode):
		if n, err := resp.Counter(); err == nil {
			value = lua.LNumber(n)
		}
	case bmemIsGetOp(resp.Opcode) || len(resp.Value) > 0:
		value = lua.LString(resp.Value)
	}
	switch {
	case len(resp.Key) > 0 && value != nil:
		return bmemResultKeyValue.table(L, header, lua.LString(resp.Key), value)
	case len(resp.Key) > 0:
		return bmemResultKey.table(L, header, lua.LString(resp.Key))
	case value != nil:
		return bmemResultValue.table(L, header, value)
	}
	return bmemResultHeader.table(L, header)
}

// The key sets of result tables.
var (
	bmemResultHeader   = newTableShape("header")
	bmemResultKey      = newTableShape("header", "key")
	bmemResultValue    = newTableShape("header", "value")
	bmemResultKeyValue = newTableShape("header", "key", "value")
	bmemHeader         = newTableShape("opaque", "CAS", "status_code", "status", "type")
)

func (m *bmem) header(L *lua.LState, resp *memcached.Response) *lua.LTable {
	var cas [8]lua.LValue
	for i := range cas {
		cas[i] = bmemByteLV[byte(resp.CAS>>(56-8*i))]
	}
	return bmemHeader.table(L,
		bmemNumberLV(resp.Opaque),
		newArrayTable(L, cas[:]...),
		bmemNumberLV(uint32(resp.Status)),
		bmemStatusValue(resp.Status),
		bmemByteLV[resp.DataType])
}

// bmemNumberLV returns n as a Lua value, boxed once when it is below 256 (a
// status code, the opaque 0 of every sync result).
func bmemNumberLV(n uint32) lua.LValue {
	if n < uint32(len(bmemByteLV)) {
		return bmemByteLV[n]
	}
	return lua.LNumber(n)
}

// bmemByteLV are the numbers 0-255 as Lua values, boxed once: a float64
// in an interface allocates, and every result carries eight CAS bytes.
var bmemByteLV = func() (t [256]lua.LValue) {
	for i := range t {
		t[i] = lua.LNumber(i)
	}
	return t
}()

func bmemIsCounterOp(op memcached.Opcode) bool {
	switch op {
	case memcached.OpIncrement, memcached.OpDecrement, memcached.OpIncrementQ, memcached.OpDecrementQ:
		return true
	}
	return false
}

func bmemIsGetOp(op memcached.Opcode) bool {
	switch op {
	case memcached.OpGet, memcached.OpGetK, memcached.OpGetQ, memcached.OpGetKQ,
		memcached.OpGAT, memcached.OpGATQ, memcached.OpGATK, memcached.OpGATKQ:
		return true
	}
	return false
}

// stat asks every server of the bucket and answers the array of their
// {header, key, value} entries, without the terminating packets.
func (m *bmem) stat(L *lua.LState) int {
	s := bmemCheckSession(L, "stat")
	var group string
	if L.Get(2) != lua.LNil {
		group, _ = bmemArgKey(L, 2)
	}
	out := L.CreateTable(64, 0)
	for idx := range s.conns {
		bc := s.conn(L, idx)
		bc.send(L, &memcached.Request{Opcode: memcached.OpStat, Key: group})
		for {
			resp := bc.read(L)
			if resp.Opaque != 0 || resp.Opcode != memcached.OpStat {
				bc.keep(L, resp)
				continue
			}
			if resp.Status == memcached.StatusNoError && len(resp.Key) == 0 {
				break
			}
			out.Append(m.result(L, resp))
			if resp.Status != memcached.StatusNoError {
				break
			}
		}
	}
	L.Push(out)
	return 1
}

// noop answers one Noop result per open connection.
func (m *bmem) noop(L *lua.LState) int {
	s := bmemCheckSession(L, "noop")
	out := L.CreateTable(len(s.conns), 0)
	for idx, bc := range s.conns {
		if bc != nil || s.shared[idx] {
			out.Append(s.call(L, idx, &memcached.Request{Opcode: memcached.OpNoop}))
		}
	}
	L.Push(out)
	return 1
}

// flush flushes every server; it answers the first failure, else the first
// server's result.
func (m *bmem) flush(L *lua.LState) int {
	s := bmemCheckSession(L, "flush")
	var first *lua.LTable
	for idx := range s.conns {
		r := s.call(L, idx, &memcached.Request{Opcode: memcached.OpFlush})
		if first == nil {
			first = r
		}
		if h, ok := r.RawGetString("header").(*lua.LTable); ok && h.RawGetString("status_code") != lua.LNumber(0) {
			L.Push(r)
			return 1
		}
	}
	L.Push(first)
	return 1
}

// closeSession says goodbye (QuitQ) on every open connection and closes it.
func (m *bmem) closeSession(L *lua.LState) int {
	s := bmemCheckSession(L, "close")
	clear(s.shared) // the shared transport is not the session's to close
	for _, bc := range s.conns {
		if bc == nil {
			continue
		}
		bc.c.Send(&memcached.Request{Opcode: memcached.OpQuitQ}) //nolint:errcheck // closing anyway
		bc.c.Flush()                                             //nolint:errcheck
		bc.drop()
	}
	return 0
}

// setKeepalive returns every connection to the bucket's pool, first reading
// whatever is still owed on it; a connection that cannot be settled is
// closed.
func (m *bmem) setKeepalive(L *lua.LState) int {
	s := bmemCheckSession(L, "setkeepalive")
	clear(s.shared) // nothing to give back on the shared transport
	for _, bc := range s.conns {
		if bc == nil {
			continue
		}
		if bc.expect > 0 || bc.unsettled > 0 {
			if err := bc.tryDrain(L); err != nil {
				bc.drop()
				continue
			}
		}
		s.put(bc)
	}
	return 0
}

func (s *bmemSession) put(bc *bmemConn) {
	size, idle := s.b.poolSize, s.b.poolIdle
	if size == 0 || idle == 0 {
		sd := s.m.vm.req.SocketDefaults()
		if size == 0 {
			size = sd.PoolSize
		}
		if idle == 0 {
			idle = sd.KeepaliveTimeout
		}
	}
	bc.pool.Put(bc.c, idle, size)
	bc.detach()
}

// track has s released when the current request ends. One hook per VM
// and request serves every session, so a session costs no closure.
func (m *bmem) track(s *bmemSession) {
	s.hooked = true
	m.active = append(m.active, s)
	if !m.hooked {
		m.hooked = true
		if m.endFn == nil {
			m.endFn = m.requestEnd
		}
		m.vm.OnRequestEnd(m.endFn)
	}
}

func (m *bmem) requestEnd() {
	m.hooked = false
	for i, s := range m.active {
		s.releaseForgotten()
		m.active[i] = nil
	}
	m.active = m.active[:0]
}

// releaseForgotten runs when the request ends: connections with nothing
// outstanding go back to the pool, others are closed (after flushing what
// was buffered, so no request the handler made is lost).
func (s *bmemSession) releaseForgotten() {
	s.hooked = false
	clear(s.shared)
	for _, bc := range s.conns {
		if bc == nil {
			continue
		}
		if bc.expect > 0 || bc.unsettled > 0 {
			bc.c.Flush() //nolint:errcheck // closing anyway
			bc.drop()
			continue
		}
		s.put(bc)
	}
}

var bmemErrNoQuery = errors.New("bmemcached: session:query (N1QL) needs a Couchbase query service, which luaserve does not talk to; use the key-value calls")

func (m *bmem) query(L *lua.LState) int {
	bmemCheckSession(L, "query")
	L.RaiseError("%s", bmemErrNoQuery.Error())
	return 0
}
