package luabind

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"luaserve/memcached"
)

// resty.memcached is lua-resty-memcached's API over memcached.Conn and the
// process-wide pools. The behaviour mirrored is the library's own Lua code
// (Debian's lua-nginx-memcached, /usr/share/lua/5.1/nginx/memcached.lua):
// flags, CAS uniques and incr/decr results come back as strings, server
// replies are handed back verbatim as the error, a miss is all nils. The
// v0.17 additions (set_timeouts, sslhandshake, pipelines) follow the v0.17
// document.
//
// The shared transport. An object the library would give a socket of its
// own is connected, after a plain connect(), to its pool's shared
// pipelined connections instead (memcached.Mux, at most two per pool for
// the whole process): connect() takes a memcached.Lease, which stands for
// the socket — it is pooled by set_keepalive, forgotten by close, and
// counts get_reused_times as a pooled socket would — and the data commands
// of one key go on the Mux with every other VM's, so that concurrent
// requests share their write and read syscalls. That is done only where
// the Lua code cannot tell: the command must be one the Mux proves
// well-formed (memcached.CheckTextCommand: a key the text protocol
// carries, numbers the server accepts), else the server may read it
// otherwise than as one command, which on a shared stream would hand
// another request a reply not its own. The results, error strings and log
// lines are the own socket's; what differs is only that a server that dies
// under a shared connection fails the calls pipelined beside it too (a
// timeout fails only the calls whose deadline passed). Everything else — multi-key get, stats, version,
// verbosity, flush_all, quit, pipelines, sslhandshake, any command the
// check refuses — takes a real connection of the object's own from the
// pool at that point, and from then on all its commands go there, in
// order, as on the library's one socket.

func init() {
	vmOpeners = append(vmOpeners, func(vm *VM) {
		m := &rmcModule{vm: vm}
		vm.L.PreloadModule("resty.memcached", m.loader)
	})
}

// rmcPoolPrefix namespaces resty.memcached's pools in the process-wide
// registry: a text-protocol connection must never be handed to a
// binary-protocol module that pools by the same host:port.
const rmcPoolPrefix = "resty.memcached "

// rmcForever stands for set_keepalive(0): no idle limit.
const rmcForever = time.Duration(math.MaxInt64)

// rmcModule is the per-VM state of the module: its metatable, the last pool
// looked up (the same host:port is connected to on almost every request) and
// the TLS pools sslhandshake used, so that a later connect() can hand out a
// pooled TLS connection as OpenResty's single host:port pool would.
type rmcModule struct {
	vm      *VM
	mod     *lua.LTable
	mt      *lua.LTable
	lastKey struct {
		host string
		port int
		key  string
		pool *memcached.Pool
	}
	tlsPools map[string]*memcached.Pool
	// scratch and vscratch are buffers for building a command and
	// flattening a table value, lent to one call at a time; a call that
	// re-enters (a key_transform function using another object) finds
	// them taken and allocates.
	scratch, vscratch []byte
	// val receives each VALUE read; everything is copied out of it before
	// a key_transform function (which could use another object) runs.
	val memcached.TextValue
	// reply receives each reply on the shared transport; it is copied out
	// before any Lua runs.
	reply memcached.TextReply
}

func (m *rmcModule) take() []byte {
	b := m.scratch
	m.scratch = nil
	return b[:0]
}

// rmc is one memcached object (memcached:new()). It is connected while it
// has a lease on the shared transport or a connection of its own (or both:
// an own connection taken after a lease, whose reuse count it keeps).
type rmc struct {
	m        *rmcModule
	conn     *memcached.Conn
	lease    *memcached.Lease
	mux      *memcached.Mux // the pool's, when lease is set
	pool     *memcached.Pool
	poolKey  string
	addrText string // host:port or unix:/path, for log lines
	isTLS    bool
	// escape/unescape are key_transform's functions; nil means
	// ngx.escape_uri / ngx.unescape_uri, done natively.
	escape, unescape lua.LValue
	// Timeouts set by set_timeout(s); zero means the lua_socket_* default.
	connectTimeout, sendTimeout, readTimeout time.Duration

	armed   bool // release is registered for the current request
	release func()

	piping  bool
	pipe    []byte
	readers []rmcOp

	buf []byte // command being built (the module's scratch while it is)

	// readShut: the last read failed other than by a timeout (the server
	// closed or reset the connection). lua-nginx-module then closes only
	// the reading side, so the next command's send fails with EPIPE; we
	// closed the connection and answer that send the same way.
	readShut bool
}

// rmcOp says how to read a command's reply and what to return.
type rmcOp uint8

const (
	rmcStore rmcOp = iota
	rmcGet
	rmcGets
	rmcMultiGet
	rmcMultiGets
	rmcDelete
	rmcFlush
	rmcIncr
	rmcStats
	rmcVersion
	rmcQuit
	rmcVerbosity
	rmcTouch
)

// readNils is how many nils precede the error string when reading fails.
func (op rmcOp) readNils() int {
	switch op {
	case rmcGet:
		return 2
	case rmcGets:
		return 3
	}
	return 1
}

// sendNils is the same for a failed send; gets returns one nil too few
// there, as the library does.
func (op rmcOp) sendNils() int {
	switch op {
	case rmcGet, rmcGets:
		return 2
	}
	return 1
}

func (m *rmcModule) loader(L *lua.LState) int {
	if m.mod != nil {
		L.Push(m.mod)
		return 1
	}
	fns := map[string]lua.LGFunction{
		"new":              m.new,
		"connect":          m.connect,
		"sslhandshake":     m.sslhandshake,
		"set_timeout":      m.setTimeout,
		"set_timeouts":     m.setTimeouts,
		"set_keepalive":    m.setKeepalive,
		"get_reused_times": m.getReusedTimes,
		"close":            m.close,
		"set":              func(L *lua.LState) int { return m.store(L, "set") },
		"add":              func(L *lua.LState) int { return m.store(L, "add") },
		"replace":          func(L *lua.LState) int { return m.store(L, "replace") },
		"append":           func(L *lua.LState) int { return m.store(L, "append") },
		"prepend":          func(L *lua.LState) int { return m.store(L, "prepend") },
		"cas":              m.cas,
		"get":              func(L *lua.LState) int { return m.get(L, false) },
		"gets":             func(L *lua.LState) int { return m.get(L, true) },
		"touch":            m.touch,
		"flush_all":        m.flushAll,
		"delete":           m.delete,
		"incr":             func(L *lua.LState) int { return m.incr(L, "incr") },
		"decr":             func(L *lua.LState) int { return m.incr(L, "decr") },
		"stats":            m.stats,
		"version":          m.version,
		"quit":             m.quit,
		"verbosity":        m.verbosity,
		"init_pipeline":    m.initPipeline,
		"commit_pipeline":  m.commitPipeline,
		"cancel_pipeline":  m.cancelPipeline,
	}
	mod := L.CreateTable(0, len(fns)+1)
	for name, fn := range fns {
		mod.RawSetString(name, L.NewFunction(fn))
	}
	mod.RawSetString("_VERSION", lua.LString("0.17"))
	m.mt = L.CreateTable(0, 2)
	m.mt.RawSetString("__index", mod)
	m.mt.RawSetString("__metatable", lua.LString("resty.memcached"))
	m.mod = mod
	L.Push(mod)
	return 1
}

// obj returns the object a method was called on, or nil when self is not
// one (memcached.get(memcached, k)): the library's "not initialized".
func (m *rmcModule) obj(L *lua.LState) *rmc {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if o, ok := ud.Value.(*rmc); ok {
			return o
		}
	}
	return nil
}

// ret pushes n nils and msg, the library's failure shape.
func ret(L *lua.LState, nils int, msg string) int {
	for i := 0; i < nils; i++ {
		L.Push(lua.LNil)
	}
	L.Push(lua.LString(msg))
	return nils + 1
}

func retOK(L *lua.LState) int {
	L.Push(lua.LNumber(1))
	return 1
}

// new: memc, err = memcached:new(opts?)
func (m *rmcModule) new(L *lua.LState) int {
	if r := m.vm.req; r == nil && (m.vm.phase == PhaseInit || m.vm.phase == PhaseInitWorker) {
		L.RaiseError("API disabled in the context of %s", m.vm.phase.directive())
	} else if r != nil {
		m.vm.disabledIn(L, r, PhaseSet, PhaseLog)
	}
	o := &rmc{m: m}
	o.release = o.releaseAtEnd
	if opts, ok := L.Get(2).(*lua.LTable); ok {
		if kt := opts.RawGetString("key_transform"); kt != lua.LNil {
			var esc, unesc lua.LValue = lua.LNil, lua.LNil
			if t, ok := kt.(*lua.LTable); ok {
				esc, unesc = t.RawGetInt(1), t.RawGetInt(2)
			} else {
				esc, unesc = L.GetTable(kt, lua.LNumber(1)), L.GetTable(kt, lua.LNumber(2))
			}
			if !lua.LVAsBool(esc) || !lua.LVAsBool(unesc) {
				return pushNilErr(L, "expecting key_transform = { escape, unescape } table")
			}
			o.escape, o.unescape = esc, unesc
		}
	}
	ud := L.NewUserData()
	ud.Value = o
	ud.Metatable = m.mt
	L.Push(ud)
	return 1
}

// socketDefaults are the lua_socket_* settings of the current request.
func (o *rmc) socketDefaults() *SocketSettings { return o.m.vm.req.SocketDefaults() }

// timeouts returns the send and read timeouts, clamped to what is left of
// the request's deadline so lua_request_timeout also stops a hung read.
func (o *rmc) timeouts() (send, read time.Duration) {
	send, read, _ = o.opTimeouts()
	return send, read
}

// opTimeouts is timeouts, and whether the request's deadline has already
// passed (the timeouts are then a nanosecond).
func (o *rmc) opTimeouts() (send, read time.Duration, expired bool) {
	d := o.socketDefaults()
	send, read = o.sendTimeout, o.readTimeout
	if send <= 0 {
		send = d.SendTimeout
	}
	if read <= 0 {
		read = d.ReadTimeout
	}
	if ctx := o.m.vm.L.Context(); ctx != nil {
		if dl, ok := ctx.Deadline(); ok {
			left := time.Until(dl)
			if left <= 0 {
				left, expired = time.Nanosecond, true
			}
			send, read = min(send, left), min(read, left)
		}
	}
	return send, read, expired
}

func (o *rmc) applyTimeouts() {
	if o.conn != nil {
		o.conn.SetTimeouts(o.timeouts())
	}
}

// connected reports whether the object has a socket, as the library's
// would: a lease on the shared transport or a connection of its own.
func (o *rmc) connected() bool { return o.conn != nil || o.lease != nil }

// drop closes the connection after an I/O error or timeout: its stream can
// no longer be trusted, and later calls answer "closed". A lease is
// forgotten, as the library's closed socket is not pooled.
func (o *rmc) drop() {
	if o.conn != nil {
		o.conn.Close() //nolint:errcheck // already failed
		o.conn = nil
	}
	o.lease = nil
	o.piping = false
}

// releaseAtEnd runs when the request ends with the connection still checked
// out: a clean one goes back to its pool, anything else is closed (Put
// decides); a lease goes back to the shared transport.
func (o *rmc) releaseAtEnd() {
	o.armed = false
	o.piping = false
	if !o.connected() {
		return
	}
	d := o.socketDefaults()
	o.keep(d.KeepaliveTimeout, d.PoolSize)
}

// keep pools what the object holds, leaving it closed.
func (o *rmc) keep(idle time.Duration, size int) {
	if o.conn != nil {
		o.pool.Put(o.conn, idle, size)
		o.conn = nil
	}
	if o.lease != nil {
		o.mux.Release(o.lease, idle, size)
		o.lease = nil
	}
}

func (o *rmc) arm() {
	if !o.armed {
		o.armed = true
		o.m.vm.OnRequestEnd(o.release)
	}
}

// ioFail turns an I/O error into the cosocket error string, writes the
// [error] line lua-nginx-module would, and drops the connection.
func (o *rmc) ioFail(err error, phase rmcPhase) string {
	msg, logLine := rmcSocketError(err, phase, o.addrText)
	if msg == "timeout" {
		// The read may have timed out on the request's deadline a moment
		// before the run's timer fires: end the run now, so the handler
		// does not go on as if only memcached had been slow.
		o.m.vm.run.expire()
	}
	if logLine != "" && o.socketDefaults().LogErrors {
		o.m.vm.Log(LogErr, logLine)
	}
	o.drop()
	o.readShut = phase == rmcPhaseRead && msg != "timeout"
	return msg
}

// send writes and flushes b on the object's own connection. ok is false
// after a failure, with the error string.
func (o *rmc) send(b []byte) (string, bool) {
	if !o.connected() && o.readShut {
		o.readShut = false
		if o.socketDefaults().LogErrors {
			o.m.vm.Log(LogErr, "send() failed (32: Broken pipe)")
		}
		return "broken pipe", false
	}
	if !o.connected() {
		// lua-nginx-module prints its pointers here; there are none to print.
		if o.socketDefaults().LogErrors {
			o.m.vm.Log(LogErr, "attempt to send data on a closed socket: u:0000000000000000, c:0000000000000000")
		}
		return "closed", false
	}
	o.applyTimeouts()
	if _, err := o.conn.Write(b); err != nil {
		return o.ioFail(err, rmcPhaseSend), false
	}
	if err := o.conn.Flush(); err != nil {
		return o.ioFail(err, rmcPhaseSend), false
	}
	return "", true
}

// readLine reads one reply line (valid until the next read).
func (o *rmc) readLine() ([]byte, string, bool) {
	if o.conn == nil {
		return nil, "closed", false
	}
	line, err := o.conn.ReadLine()
	if err != nil {
		return nil, o.ioFail(err, rmcPhaseRead), false
	}
	return line, "", true
}

// readValue reads one VALUE item; done is true at END. A reply the library
// would not match as VALUE comes back verbatim in msg.
func (o *rmc) readValue() (done bool, msg string, ok bool) {
	if o.conn == nil {
		return false, "closed", false
	}
	more, err := o.conn.ReadValue(&o.m.val)
	if err == nil {
		return !more, "", true
	}
	var se *memcached.ServerError
	if errors.As(err, &se) {
		if o.conn.Broken() {
			o.drop()
		}
		return false, se.Line(), false
	}
	if line, ok := rmcUnexpectedLine(err); ok {
		o.drop()
		return false, line, false
	}
	return false, o.ioFail(err, rmcPhaseRead), false
}

// rmcUnexpectedLine recovers the reply line from the codec's protocol error,
// which the library would have returned as it was.
func rmcUnexpectedLine(err error) (string, bool) {
	if !errors.Is(err, memcached.ErrProtocol) {
		return "", false
	}
	s := err.Error()
	i := strings.Index(s, "unexpected reply ")
	if i < 0 {
		return "", false
	}
	line, uerr := strconv.Unquote(s[i+len("unexpected reply "):])
	return line, uerr == nil
}

// appendKey appends key escaped by the object's key_transform.
func (o *rmc) appendKey(L *lua.LState, dst []byte, key lua.LValue) []byte {
	if o.escape == nil {
		return rmcAppendEscaped(dst, coerceString(L, key))
	}
	L.Push(o.escape)
	L.Push(key)
	L.Call(1, 1)
	v := L.Get(-1)
	L.Pop(1)
	return rmcAppendConcat(L, dst, v, "")
}

// unescapeKey maps a key from a reply back through key_transform.
func (o *rmc) unescapeKey(L *lua.LState, key []byte) lua.LValue {
	if o.unescape == nil {
		return lua.LString(UnescapeURI(make([]byte, 0, len(key)), key))
	}
	L.Push(o.unescape)
	L.Push(lua.LString(key))
	L.Call(1, 1)
	v := L.Get(-1)
	L.Pop(1)
	return v
}

// rmcAppendEscaped is EscapeURI(dst, s, EscapeTypeURIComponent) on a string,
// without converting it to a slice first.
func rmcAppendEscaped(dst []byte, s string) []byte {
	tbl := ngxEscapeTables[EscapeTypeURIComponent]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tbl[c>>5]&(1<<(c&0x1f)) != 0 {
			dst = append(dst, '%', ngxUpperHex[c>>4], ngxUpperHex[c&0xf])
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

// rmcAppendConcat appends v as Lua's `..` would, raising its error for
// anything but a string or a number; name is the library's variable v
// stands for, as LuaJIT names it ("local 'exptime'"), "" for an
// expression.
func rmcAppendConcat(L *lua.LState, dst []byte, v lua.LValue, name string) []byte {
	switch lv := v.(type) {
	case lua.LString:
		return append(dst, lv...)
	case lua.LNumber:
		return appendLuaJITNumber(dst, float64(lv))
	}
	// LuaJIT's wording, as the library's own `..` raises it here.
	L.RaiseError("%s", opError("concatenate", name, v))
	return dst
}

// rmcAppendValue flattens a value: a string, a number, or a nested array of
// them (the library's _expand_table, concatenated without delimiters).
func rmcAppendValue(L *lua.LState, dst []byte, v lua.LValue, depth int) []byte {
	t, ok := v.(*lua.LTable)
	if !ok {
		switch v.(type) {
		case lua.LString, lua.LNumber:
			return rmcAppendConcat(L, dst, v, "")
		}
		L.RaiseError("bad argument #1 to 'strlen' (string expected, got %s)", v.Type().String())
	}
	if depth > 100 {
		L.RaiseError("value table nested too deeply")
	}
	n := t.Len()
	for i := 1; i <= n; i++ {
		e := t.RawGetInt(i)
		switch e.(type) {
		case *lua.LTable:
			dst = rmcAppendValue(L, dst, e, depth+1)
		case lua.LString, lua.LNumber:
			dst = rmcAppendConcat(L, dst, e, "")
		default:
			L.RaiseError("invalid value (%s) at index %d in table for 'concat'", e.Type().String(), i)
		}
	}
	return dst
}

// appendArgOr appends argument n as `..` would, or def when it is nil or
// false (the library's `if not exptime then exptime = 0 end`).
func rmcAppendArgOr(L *lua.LState, dst []byte, n int, def, name string) []byte {
	v := L.Get(n)
	if !lua.LVAsBool(v) {
		return append(dst, def...)
	}
	return rmcAppendConcat(L, dst, v, name)
}

// exec sends the command in o.buf and reads its reply, or queues both when
// a pipeline is open.
func (o *rmc) exec(L *lua.LState, op rmcOp) int {
	b := o.buf
	o.buf = nil
	if o.piping {
		o.pipe = append(o.pipe, b...)
		o.readers = append(o.readers, op)
		o.m.scratch = b[:0]
		return retOK(L)
	}
	if o.conn == nil && o.lease != nil {
		if n, done := o.execShared(L, op, b); done {
			o.m.scratch = b[:0]
			return n
		}
		if msg, ok := o.takeConn(); !ok {
			o.m.scratch = b[:0]
			return ret(L, op.readNils(), msg)
		}
	}
	msg, ok := o.send(b)
	o.m.scratch = b[:0]
	if !ok {
		return ret(L, op.sendNils(), msg)
	}
	return o.read(L, op)
}

// shareable reports whether op's reply is read the same way on the shared
// transport: the commands of one key with a single-line reply, and get and
// gets of one key. A multi-key get is left out: its table is built item by
// item through key_transform's unescape, and a failure half way returns
// what was read so far, which the own connection reproduces as it is.
func (op rmcOp) shareable() bool {
	switch op {
	case rmcStore, rmcGet, rmcGets, rmcDelete, rmcIncr, rmcTouch:
		return true
	}
	return false
}

// execShared runs the command in b on the shared transport and pushes the
// results; done is false, with nothing sent, when the command is not one
// the transport carries.
func (o *rmc) execShared(L *lua.LState, op rmcOp, b []byte) (n int, done bool) {
	if !op.shareable() {
		return 0, false
	}
	send, read, expired := o.opTimeouts()
	if expired {
		// The own socket's write would fail at once on the passed deadline;
		// on the shared connection the command would still go out, and its
		// reply be read for nothing.
		return ret(L, op.sendNils(), o.ioFail(os.ErrDeadlineExceeded, rmcPhaseSend)), true
	}
	ctx := o.m.vm.L.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	r := &o.m.reply
	err := o.mux.DoText(ctx, b, r, send, read)
	if err != nil {
		var de *memcached.DialError
		var se *memcached.SendError
		switch {
		case errors.Is(err, memcached.ErrUnshareable):
			return 0, false
		case errors.As(err, &de):
			return ret(L, op.readNils(), o.lostConn(err)), true
		case errors.As(err, &se):
			return ret(L, op.sendNils(), o.ioFail(err, rmcPhaseSend)), true
		}
		return ret(L, op.readNils(), o.ioFail(err, rmcPhaseRead)), true
	}
	if op != rmcGet && op != rmcGets {
		return o.lineResult(L, op, r.Line), true
	}
	if r.Hit {
		L.Push(lua.LString(r.Value))
		L.Push(rmcFlags(r.Flags))
		if op == rmcGets {
			L.Push(lua.LString(strconv.FormatUint(r.CAS, 10)))
			return 3, true
		}
		return 2, true
	}
	if memcached.IsEnd(r.Line) {
		for i := 0; i <= op.readNils(); i++ {
			L.Push(lua.LNil)
		}
		return op.readNils() + 1, true
	}
	// A line that is no item: what readValue makes of it on the own
	// connection, which is closed unless the line was a refusal of the
	// command (CLIENT_ERROR, SERVER_ERROR).
	if err := memcached.ParseErrorLine(r.Line); err != nil {
		se := err.(*memcached.ServerError)
		if se.Kind == memcached.KindError {
			o.drop()
		}
		return ret(L, op.readNils(), se.Line()), true
	}
	o.drop()
	line := r.Line
	if len(line) > rmcUnexpectedMax {
		line = line[:rmcUnexpectedMax]
	}
	return ret(L, op.readNils(), string(line)), true
}

// rmcUnexpectedMax is how much of an unexpected reply line the codec's
// protocol error keeps, and so what rmcUnexpectedLine recovers of it on
// the own connection.
const rmcUnexpectedMax = 64

// takeConn gives an object that has only a lease a connection of its own
// from the pool, for a command the shared transport does not carry.
func (o *rmc) takeConn() (string, bool) {
	ctx := o.m.vm.L.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if o.pool.Idle() == 0 {
		timeout := o.connectTimeout
		if timeout <= 0 {
			timeout = o.socketDefaults().ConnectTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := o.pool.Get(ctx)
	if err != nil {
		return o.lostConn(err), false
	}
	o.conn = c
	o.applyTimeouts()
	return "", true
}

// lostConn reports that the server could not be reached again for a
// command after connect() had succeeded on the shared transport (the server
// went away since): as the library's read on a socket whose server closed
// it, or, when the connect timed out, as its read timing out.
func (o *rmc) lostConn(err error) string {
	if errors.Is(err, memcached.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || rmcIsTimeout(err) {
		return o.ioFail(err, rmcPhaseRead)
	}
	return o.ioFail(io.EOF, rmcPhaseRead)
}

// read reads the reply of op and pushes what the library's method returns.
func (o *rmc) read(L *lua.LState, op rmcOp) int {
	switch op {
	case rmcQuit:
		return retOK(L)
	case rmcGet, rmcGets:
		done, msg, ok := o.readValue()
		if !ok {
			return ret(L, op.readNils(), msg)
		}
		if done {
			for i := 0; i <= op.readNils(); i++ {
				L.Push(lua.LNil)
			}
			return op.readNils() + 1
		}
		data := lua.LString(o.m.val.Value)
		flags := rmcFlags(o.m.val.Flags)
		cas := o.m.val.CAS
		// The library reads the trailing "END" blindly.
		if _, msg, ok := o.readLine(); !ok {
			return ret(L, op.readNils(), msg)
		}
		L.Push(data)
		L.Push(flags)
		if op == rmcGets {
			L.Push(lua.LString(strconv.FormatUint(cas, 10)))
			return 3
		}
		return 2
	case rmcMultiGet, rmcMultiGets:
		results := L.NewTable()
		for {
			done, msg, ok := o.readValue()
			if !ok {
				return ret(L, 1, msg)
			}
			if done {
				L.Push(results)
				return 1
			}
			n := 2
			if op == rmcMultiGets {
				n = 3
			}
			item := L.CreateTable(n, 0)
			item.RawSetInt(1, lua.LString(o.m.val.Value))
			item.RawSetInt(2, rmcFlags(o.m.val.Flags))
			if op == rmcMultiGets {
				item.RawSetInt(3, lua.LString(strconv.FormatUint(o.m.val.CAS, 10)))
			}
			key := o.unescapeKey(L, o.m.val.Key)
			if key == lua.LNil {
				L.RaiseError("table index is nil")
			}
			results.RawSet(key, item)
		}
	case rmcStats:
		lines := L.NewTable()
		for i := 1; ; i++ {
			line, msg, ok := o.readLine()
			if !ok {
				return ret(L, 1, msg)
			}
			if memcached.IsEnd(line) {
				L.Push(lines)
				return 1
			}
			if strings.Contains(string(line), "ERROR") {
				return ret(L, 1, string(line))
			}
			lines.RawSetInt(i, lua.LString(line))
		}
	}
	line, msg, ok := o.readLine()
	if !ok {
		return ret(L, 1, msg)
	}
	return o.lineResult(L, op, line)
}

// lineResult pushes what the method of op returns for its reply line.
func (o *rmc) lineResult(L *lua.LState, op rmcOp, line []byte) int {
	var want string
	switch op {
	case rmcStore:
		want = "STORED"
	case rmcDelete:
		want = "DELETED"
	case rmcFlush, rmcVerbosity:
		want = "OK"
	case rmcTouch:
		// moxi answers STORED to a touch, so the library accepts both.
		if string(line) == "TOUCHED" || string(line) == "STORED" {
			return retOK(L)
		}
		return ret(L, 1, string(line))
	case rmcIncr:
		if rmcAllDigits(line) {
			L.Push(lua.LString(line))
			return 1
		}
		return ret(L, 1, string(line))
	case rmcVersion:
		if len(line) > 8 && string(line[:8]) == "VERSION " {
			L.Push(lua.LString(line[8:]))
			return 1
		}
		// The library returns the failed match: nil, nil.
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		return 2
	}
	if string(line) == want {
		return retOK(L)
	}
	return ret(L, 1, string(line))
}

// rmcSmallFlags are flags 0-9 as Lua strings, boxed once: most items carry
// flags 0, and the library returns flags as strings.
var rmcSmallFlags = func() (t [10]lua.LValue) {
	for i := range t {
		t[i] = lua.LString(strconv.Itoa(i))
	}
	return t
}()

func rmcFlags(f uint32) lua.LValue {
	if f < uint32(len(rmcSmallFlags)) {
		return rmcSmallFlags[f]
	}
	return lua.LString(strconv.FormatUint(uint64(f), 10))
}

func rmcAllDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// store: ok, err = memc:set(key, value, exptime?, flags?) and add, replace,
// append, prepend.
func (m *rmcModule) store(L *lua.LState, cmd string) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	return o.storeCmd(L, cmd, lua.LNil)
}

// storeCmd builds "<cmd> <key> <flags> <exptime> <bytes> [<cas>]" from the
// arguments key(2) value(3) then exptime and flags, which follow cas.
func (o *rmc) storeCmd(L *lua.LState, cmd string, cas lua.LValue) int {
	argExp, argFlags := 4, 5
	if cas != lua.LNil {
		argExp, argFlags = 5, 6
	}
	value := L.Get(3)
	var data []byte
	str, isStr := value.(lua.LString)
	if !isStr {
		data = rmcAppendValue(L, o.m.vscratch[:0], value, 0)
		o.m.vscratch = nil
	}
	b := append(o.m.take(), cmd...)
	b = append(b, ' ')
	b = o.appendKey(L, b, L.Get(2))
	b = append(b, ' ')
	b = rmcAppendArgOr(L, b, argFlags, "0", "local 'flags'")
	b = append(b, ' ')
	b = rmcAppendArgOr(L, b, argExp, "0", "local 'exptime'")
	b = append(b, ' ')
	if isStr {
		b = strconv.AppendInt(b, int64(len(str)), 10)
	} else {
		b = strconv.AppendInt(b, int64(len(data)), 10)
	}
	if cas != lua.LNil {
		b = append(b, ' ')
		b = rmcAppendConcat(L, b, cas, "local 'cas_uniq'")
	}
	b = append(b, "\r\n"...)
	if isStr {
		b = append(b, str...)
	} else {
		b = append(b, data...)
		o.m.vscratch = data[:0]
	}
	b = append(b, "\r\n"...)
	o.buf = b
	return o.exec(L, rmcStore)
}

// cas: ok, err = memc:cas(key, value, cas_unique, exptime?, flags?)
func (m *rmcModule) cas(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	cas := L.Get(4)
	if cas == lua.LNil {
		L.RaiseError("attempt to concatenate local 'cas_uniq' (a nil value)")
	}
	return o.storeCmd(L, "cas", cas)
}

// get: value, flags, err = memc:get(key); results, err = memc:get(keys).
// gets adds the CAS unique.
func (m *rmcModule) get(L *lua.LState, withCAS bool) int {
	o := m.obj(L)
	keys, multi := L.Get(2).(*lua.LTable)
	cmd := "get"
	op := rmcGet
	if withCAS {
		cmd, op = "gets", rmcGets
	}
	if multi {
		op = rmcMultiGet
		if withCAS {
			op = rmcMultiGets
		}
	}
	if o == nil {
		return ret(L, op.readNils(), "not initialized")
	}
	b := append(o.m.take(), cmd...)
	if multi {
		n := keys.Len()
		if n == 0 {
			L.Push(L.NewTable())
			L.Push(lua.LNil)
			return 2
		}
		for i := 1; i <= n; i++ {
			b = append(b, ' ')
			b = o.appendKey(L, b, keys.RawGetInt(i))
		}
	} else {
		b = append(b, ' ')
		b = o.appendKey(L, b, L.Get(2))
	}
	o.buf = append(b, "\r\n"...)
	return o.exec(L, op)
}

// touch: ok, err = memc:touch(key, exptime)
func (m *rmcModule) touch(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	b := append(o.m.take(), "touch "...)
	b = o.appendKey(L, b, L.Get(2))
	b = append(b, ' ')
	b = rmcAppendConcat(L, b, L.Get(3), "local 'exptime'")
	o.buf = append(b, "\r\n"...)
	return o.exec(L, rmcTouch)
}

// flush_all: ok, err = memc:flush_all(time?)
func (m *rmcModule) flushAll(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	b := append(o.m.take(), "flush_all"...)
	if t := L.Get(2); lua.LVAsBool(t) {
		b = append(b, ' ')
		b = rmcAppendConcat(L, b, t, "local 'time'")
	}
	o.buf = append(b, "\r\n"...)
	return o.exec(L, rmcFlush)
}

// delete: ok, err = memc:delete(key)
func (m *rmcModule) delete(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	b := append(o.m.take(), "delete "...)
	b = o.appendKey(L, b, L.Get(2))
	o.buf = append(b, "\r\n"...)
	return o.exec(L, rmcDelete)
}

// incr/decr: new_value, err = memc:incr(key, delta)
func (m *rmcModule) incr(L *lua.LState, cmd string) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	b := append(o.m.take(), cmd...)
	b = append(b, ' ')
	b = o.appendKey(L, b, L.Get(2))
	b = append(b, ' ')
	b = rmcAppendConcat(L, b, L.Get(3), "local 'value'")
	o.buf = append(b, "\r\n"...)
	return o.exec(L, rmcIncr)
}

// stats: lines, err = memc:stats(args?)
func (m *rmcModule) stats(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	b := append(o.m.take(), "stats"...)
	if a := L.Get(2); lua.LVAsBool(a) {
		b = append(b, ' ')
		b = rmcAppendConcat(L, b, a, "local 'args'")
	}
	o.buf = append(b, "\r\n"...)
	return o.exec(L, rmcStats)
}

// version: version, err = memc:version()
func (m *rmcModule) version(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	o.buf = append(o.m.take(), "version\r\n"...)
	return o.exec(L, rmcVersion)
}

// quit: ok, err = memc:quit() — sent, no reply is read.
func (m *rmcModule) quit(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	o.buf = append(o.m.take(), "quit\r\n"...)
	return o.exec(L, rmcQuit)
}

// verbosity: ok, err = memc:verbosity(level)
func (m *rmcModule) verbosity(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	b := append(o.m.take(), "verbosity "...)
	b = rmcAppendConcat(L, b, L.Get(2), "local 'level'")
	o.buf = append(b, "\r\n"...)
	return o.exec(L, rmcVerbosity)
}

// init_pipeline: err = memc:init_pipeline(n?)
func (m *rmcModule) initPipeline(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		L.Push(lua.LString("not initialized"))
		return 1
	}
	if o.piping {
		L.Push(lua.LString("already init pipeline"))
		return 1
	}
	n := 4
	if v := L.Get(2); v != lua.LNil {
		num, ok := v.(lua.LNumber)
		if !ok {
			L.Push(lua.LString("bad n arg: number expected, but got " + v.Type().String()))
			return 1
		}
		n = max(int(num), 0)
	}
	o.piping = true
	o.pipe = o.pipe[:0]
	if cap(o.readers) < n {
		o.readers = make([]rmcOp, 0, n)
	}
	o.readers = o.readers[:0]
	return 0
}

// cancel_pipeline: memc:cancel_pipeline() — always succeeds.
func (m *rmcModule) cancelPipeline(L *lua.LState) int {
	if o := m.obj(L); o != nil {
		o.piping = false
		o.pipe = o.pipe[:0]
		o.readers = o.readers[:0]
	}
	return 0
}

// commit_pipeline: results, err = memc:commit_pipeline(). results[i] holds
// what the i-th queued call returns outside a pipeline ({1}, {nil, "NOT_STORED"},
// {value, flags}, …). A socket failure fails the whole commit.
func (m *rmcModule) commitPipeline(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	if !o.piping {
		return ret(L, 1, "no pipeline")
	}
	o.piping = false
	readers := o.readers
	results := L.CreateTable(len(readers), 0)
	if len(readers) == 0 {
		L.Push(results)
		return 1
	}
	if o.conn == nil && o.lease != nil {
		if msg, ok := o.takeConn(); !ok {
			return ret(L, 1, msg)
		}
	}
	if msg, ok := o.send(o.pipe); !ok {
		return ret(L, 1, msg)
	}
	for i, op := range readers {
		base := L.GetTop()
		n := o.read(L, op)
		if o.conn == nil {
			// The socket failed: the error is the last value read returned.
			msg := L.Get(base + n)
			L.SetTop(base)
			L.Push(lua.LNil)
			L.Push(msg)
			return 2
		}
		res := L.CreateTable(n, 0)
		for j := 1; j <= n; j++ {
			res.RawSetInt(j, L.Get(base+j))
		}
		L.SetTop(base)
		results.RawSetInt(i+1, res)
	}
	o.readers = readers[:0]
	o.pipe = o.pipe[:0]
	L.Push(results)
	return 1
}

// set_timeout: ok, err = memc:set_timeout(ms) — connect, send and read.
func (m *rmcModule) setTimeout(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	t := rmcMillis(L, 2)
	o.connectTimeout, o.sendTimeout, o.readTimeout = t, t, t
	o.applyTimeouts()
	return retOK(L)
}

// set_timeouts: ok, err = memc:set_timeouts(connect, send, read)
func (m *rmcModule) setTimeouts(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	o.connectTimeout, o.sendTimeout, o.readTimeout = rmcMillis(L, 2), rmcMillis(L, 3), rmcMillis(L, 4)
	o.applyTimeouts()
	return retOK(L)
}

// rmcMillis reads a timeout in ms; 0 or less means the lua_socket_* default.
func rmcMillis(L *lua.LState, n int) time.Duration {
	ms := float64(L.CheckNumber(n))
	if ms <= 0 {
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// get_reused_times: times, err = memc:get_reused_times()
func (m *rmcModule) getReusedTimes(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	if !o.connected() {
		return ret(L, 1, "closed")
	}
	if o.lease != nil {
		L.Push(lua.LNumber(o.lease.ReusedTimes()))
		return 1
	}
	L.Push(lua.LNumber(o.conn.ReusedTimes()))
	return 1
}

// close: ok, err = memc:close()
func (m *rmcModule) close(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	if !o.connected() {
		return ret(L, 1, "closed")
	}
	o.piping = false
	var err error
	if o.conn != nil {
		err = o.conn.Close()
		o.conn = nil
	}
	o.lease = nil
	if err != nil {
		return ret(L, 1, "closed")
	}
	return retOK(L)
}

// set_keepalive: ok, err = memc:set_keepalive(max_idle_ms?, pool_size?)
// The object is closed afterwards whatever the outcome, as a cosocket is.
func (m *rmcModule) setKeepalive(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	if !o.connected() {
		return ret(L, 1, "closed")
	}
	d := o.socketDefaults()
	idle, size := d.KeepaliveTimeout, d.PoolSize
	if v := L.Get(2); v != lua.LNil {
		ms := float64(L.CheckNumber(2))
		switch {
		case ms < 0:
			L.RaiseError(`bad "timeout" option value: %s`, ngxFormatNumber(ms))
		case ms == 0:
			idle = rmcForever
		default:
			idle = time.Duration(ms * float64(time.Millisecond))
		}
	}
	if v := L.Get(3); v != lua.LNil {
		n := int(L.CheckNumber(3))
		if n <= 0 {
			L.RaiseError(`bad "pool_size" option value: %d`, n)
		}
		size = n
	}
	o.piping = false
	if o.conn != nil && o.conn.Buffered() > 0 {
		o.drop() // refused: the reply left would be the next user's
		return ret(L, 1, "unread data in buffer")
	}
	o.keep(idle, size)
	return retOK(L)
}
