package luabind

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// ngx.socket.tcp: lua-nginx-module's cosocket API over Go's net package.
//
// A cosocket blocks its request's goroutine only, as a cosocket yields only
// its request's coroutine in nginx. Every blocking call honours the socket's
// timeouts (settimeout/settimeouts, else the location's lua_socket_*
// directives) and the request's deadline (lua_request_timeout). Return
// values, error strings and the [error] lines written for failures are
// lua-nginx-module 0.10's; the closed-socket log lines print null pointers,
// as there are none to print here.

func init() {
	vmOpeners = append(vmOpeners, openNgxSocket)
}

// sockBufSize is lua_socket_buffer_size's default: the initial read buffer
// of a connection; "*l" and receiveuntil grow it for longer lines.
const sockBufSize = 4096

// sockModule is one VM's ngx.socket: the socket metatables and the sockets
// the current request opened, closed when it ends.
type sockModule struct {
	vm      *VM
	tcpMeta *lua.LTable
	udpMeta *lua.LTable
	open    []*tcpSock
	openUDP []*udpSock
	hooked  bool
	endFn   func()
	scratch []byte

	// lastKey caches the pool name of the last host/port connected to, so
	// the usual one-backend handler does not build "host:port" per request.
	lastHost string
	lastPort int
	lastKey  string
	lastAddr string
}

// tcpSock is the Go side of a Lua tcp socket object.
type tcpSock struct {
	m *sockModule
	c *sockConn
	// connectTO, sendTO, readTO are settimeout(s) values; 0 means the
	// lua_socket_* default of the request.
	connectTO, sendTO, readTO time.Duration
	tracked                   bool
}

// sockConn is one connection, kept in a keepalive pool between requests.
type sockConn struct {
	nc    net.Conn
	raw   net.Conn // nc before TLS
	isTLS bool
	buf   []byte
	r, w  int
	// eof: "*a" read to the end (another "*a" returns ""). readClosed:
	// a read failed other than by a timeout; nginx then finalizes the
	// read half only, so send and close still work.
	eof        bool
	readClosed bool
	reused     int
	pool       *sockPool
	closed     bool

	// rc and peekFn let the pool probe an idle connection without
	// allocating (see connAlive); peekAlive is peek's answer.
	rc        syscall.RawConn
	peekFn    func(fd uintptr) bool
	peekAlive bool
}

func newSockConn(nc net.Conn, p *sockPool) *sockConn {
	c := &sockConn{nc: nc, raw: nc, buf: make([]byte, sockBufSize), pool: p}
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
		c.peekFn = c.peek
	}
	return c
}

// close closes the connection and gives its place in the pool back.
func (c *sockConn) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.nc.Close() //nolint:errcheck // nothing to do about it
	if c.pool != nil {
		cosocketPools.release(c.pool)
	}
}

func openNgxSocket(vm *VM) {
	m := &sockModule{vm: vm}
	m.endFn = m.endRequest
	L := vm.L
	fn := func(f lua.LGFunction) *lua.LFunction { return L.NewFunction(f) }

	tcpMethods := L.NewTable()
	for name, f := range map[string]lua.LGFunction{
		"connect":        m.tcpConnect,
		"sslhandshake":   m.tcpSSLHandshake,
		"send":           m.tcpSend,
		"receive":        m.tcpReceive,
		"receiveany":     m.tcpReceiveAny,
		"receiveuntil":   m.tcpReceiveUntil,
		"close":          m.tcpClose,
		"settimeout":     m.tcpSetTimeout,
		"settimeouts":    m.tcpSetTimeouts,
		"setoption":      m.tcpSetOption,
		"setkeepalive":   m.tcpSetKeepalive,
		"getreusedtimes": m.tcpGetReusedTimes,
	} {
		tcpMethods.RawSetString(name, fn(f))
	}
	m.tcpMeta = L.NewTable()
	m.tcpMeta.RawSetString("__index", tcpMethods)

	udpMethods := L.NewTable()
	for name, f := range map[string]lua.LGFunction{
		"setpeername": m.udpSetPeerName,
		"send":        m.udpSend,
		"receive":     m.udpReceive,
		"close":       m.udpClose,
		"settimeout":  m.udpSetTimeout,
	} {
		udpMethods.RawSetString(name, fn(f))
	}
	m.udpMeta = L.NewTable()
	m.udpMeta.RawSetString("__index", udpMethods)

	socket := L.NewTable()
	tcp := fn(m.newTCP)
	socket.RawSetString("tcp", tcp)
	socket.RawSetString("stream", tcp)
	socket.RawSetString("connect", fn(m.connectShorthand))
	socket.RawSetString("udp", fn(m.newUDP))
	vm.ngx.RawSetString("socket", socket)
}

// ---- request plumbing ----

// checkContext raises lua-nginx-module's errors for cosockets used where
// nginx cannot yield: outside a request, or in set/log phases.
func (m *sockModule) checkContext(L *lua.LState) {
	r := m.vm.req
	if r == nil {
		if m.vm.phase == PhaseTimer {
			return
		}
		sockRaise(L, "no request found")
	}
	switch r.Phase {
	case PhaseSet, PhaseLog, PhaseInit, PhaseInitWorker:
		sockRaise(L, "API disabled in the context of %s", r.Phase.directive())
	}
}

// sockRaise raises an error without a position, as luaL_error does from a
// C function: OpenResty's cosocket errors read exactly so.
func sockRaise(L *lua.LState, format string, args ...any) {
	L.Error(lua.LString(fmt.Sprintf(format, args...)), 0)
}

// sockArgError raises luaL_argerror's message for stack argument narg
// (self is 1) the way LuaJIT words it: called from Lua code, with the
// caller's position and the method's name, self not counted; called
// through pcall, as "bad argument #narg to '?'".
func sockArgError(L *lua.LState, narg int, msg string) {
	name, where := "?", ""
	if dbg, ok := L.GetStack(1); ok {
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil && dbg.What != "G" && dbg.CurrentLine > 0 {
			where = shortSource(dbg.Source) + ":" + strconv.Itoa(dbg.CurrentLine) + ": "
			if cur, ok := L.GetStack(0); ok {
				if _, err := L.GetInfo("n", cur, lua.LNil); err == nil && cur.Name != "" {
					name = cur.Name
				}
			}
			if narg > 1 {
				// sock:method(...) is how cosocket methods are called
				narg--
			}
		}
	}
	sockRaise(L, "%sbad argument #%d to '%s' (%s)", where, narg, name, msg)
}

func (m *sockModule) settings() *SocketSettings { return m.vm.req.SocketDefaults() }

// track makes sure a socket connected in this request is closed when the
// request ends, as nginx's request cleanup does.
func (m *sockModule) track(s *tcpSock) {
	if s.tracked {
		return
	}
	s.tracked = true
	m.open = append(m.open, s)
	m.hook()
}

func (m *sockModule) hook() {
	if !m.hooked && m.vm.req != nil {
		m.hooked = true
		m.vm.OnRequestEnd(m.endFn)
	}
}

func (m *sockModule) endRequest() {
	for i, s := range m.open {
		if s.c != nil {
			s.c.close()
			s.c = nil
		}
		s.tracked = false
		m.open[i] = nil
	}
	m.open = m.open[:0]
	for i, u := range m.openUDP {
		u.close()
		m.openUDP[i] = nil
	}
	m.openUDP = m.openUDP[:0]
	m.hooked = false
}

// deadline is now+timeout, or the request's deadline when that is sooner.
func (m *sockModule) deadline(timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if ctx := m.vm.L.Context(); ctx != nil {
		if rd, ok := ctx.Deadline(); ok && rd.Before(d) {
			return rd
		}
	}
	return d
}

func (m *sockModule) parentContext() context.Context {
	if ctx := m.vm.L.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func (m *sockModule) logErr(level int, msg string) {
	if msg != "" && m.settings().LogErrors {
		m.vm.Log(level, msg)
	}
}

// logClosed is the line nginx writes for I/O on a socket with no
// connection; it prints the addresses of its structures, which do not exist
// here.
func (m *sockModule) logClosed(op string) {
	m.logErr(LogErr, "attempt to "+op+" data on a closed socket: u:0000000000000000, c:0000000000000000")
}

func pushNilErr(L *lua.LState, msg string) int {
	L.Push(lua.LNil)
	L.Push(lua.LString(msg))
	return 2
}

func pushNilErrPartial(L *lua.LState, msg string, partial []byte) int {
	L.Push(lua.LNil)
	L.Push(lua.LString(msg))
	L.Push(lua.LString(partial))
	return 3
}

// ---- errors ----

// sockOp is the operation that failed, for the log line.
type sockOp uint8

const (
	sockConnect sockOp = iota
	sockSend
	sockRecv
)

// sockError maps a Go socket error onto the cosocket's error string
// (ngx_http_lua_socket_prepare_error_retvals) and the line nginx logs for it
// ("" for none, as for a peer that closed). addr names the peer for connect
// errors; proto is "tcp" or "udp".
func sockError(err error, op sockOp, addr, proto string) (msg string, level int, logLine string) {
	var dnsErr *net.DNSError
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) || isNetTimeout(err):
		switch op {
		case sockConnect:
			return "timeout", LogErr, "lua " + proto + " socket connect timed out, when connecting to " + addr
		case sockSend:
			return "timeout", LogErr, "lua " + proto + " socket write timed out"
		}
		return "timeout", LogErr, "lua " + proto + " socket read timed out"
	case errors.As(err, &dnsErr):
		m := dnsErr.Name + " could not be resolved (3: Host not found)"
		if !dnsErr.IsNotFound {
			m = dnsErr.Name + " could not be resolved (2: Server failure)"
		}
		return m, LogErr, m
	case errors.As(err, &errno):
		text := errno.Error()
		detail := " (" + strconv.Itoa(int(errno)) + ": " + strings.ToUpper(text[:1]) + text[1:] + ")"
		switch op {
		case sockConnect:
			// nginx logs a refused connect when the event loop sees it, and
			// any other failure of connect(2) itself at crit, naming the peer.
			if errno == syscall.ECONNREFUSED && !strings.HasPrefix(addr, "unix:") {
				return text, LogErr, "connect() failed" + detail
			}
			level := LogCrit
			if errno == syscall.ECONNREFUSED {
				level = LogErr
			}
			return text, level, "connect() to " + addr + " failed" + detail
		case sockSend:
			return text, LogErr, "send() failed" + detail
		}
		return text, LogErr, "recv() failed" + detail
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return "closed", LogErr, ""
	}
	return "error", LogErr, "lua " + proto + " socket error: " + err.Error()
}

// ioError logs err as nginx would and returns its Lua string. When the
// request's own deadline is what expired, the run is stopped now rather
// than at the timer's next tick, so the handler cannot go on.
func (m *sockModule) ioError(err error, op sockOp, addr, proto string) string {
	msg, level, line := sockError(err, op, addr, proto)
	// nginx's core writes these itself, whatever lua_socket_log_errors
	// says: a connect(2) that fails at once, and UDP send/recv failures.
	if strings.HasPrefix(line, "connect() to ") || proto == "udp" && (strings.HasPrefix(line, "recv() failed") || strings.HasPrefix(line, "send() failed")) {
		m.vm.Log(level, line)
	} else {
		m.logErr(level, line)
	}
	if msg == "timeout" {
		m.vm.run.expire()
	}
	return msg
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ---- tcp: object ----

// tcpSelf returns the socket behind self (arg 1); a table that is not a
// socket is treated as a never-connected one, as lua-nginx-module does.
func (m *sockModule) tcpSelf(L *lua.LState, fname string) *tcpSock {
	t, ok := L.Get(1).(*lua.LTable)
	if !ok {
		sockArgError(L, 1, "table expected, got "+typeName(L.Get(1)))
	}
	if ud, ok := t.RawGetInt(1).(*lua.LUserData); ok {
		if s, ok := ud.Value.(*tcpSock); ok {
			return s
		}
	}
	return nil
}

// newTCP: sock = ngx.socket.tcp()
func (m *sockModule) newTCP(L *lua.LState) int {
	if n := L.GetTop(); n != 0 {
		sockRaise(L, "expecting zero arguments, but got %d", n)
	}
	m.checkContext(L)
	L.Push(m.newTCPObject(L))
	return 1
}

func (m *sockModule) newTCPObject(L *lua.LState) *lua.LTable {
	t := L.CreateTable(1, 0)
	ud := L.NewUserData()
	ud.Value = &tcpSock{m: m}
	t.RawSetInt(1, ud)
	t.Metatable = m.tcpMeta
	return t
}

// connectShorthand: sock, err = ngx.socket.connect(host, port) or
// ngx.socket.connect("unix:/path")
func (m *sockModule) connectShorthand(L *lua.LState) int {
	m.checkContext(L)
	t := m.newTCPObject(L)
	L.Insert(t, 1)
	if n := m.tcpConnect(L); n != 1 {
		return n
	}
	L.Push(t)
	return 1
}

// ---- tcp: connect ----

// tcpConnect: ok, err = sock:connect(host, port, opts?) or
// sock:connect("unix:/path", opts?)
func (m *sockModule) tcpConnect(L *lua.LState) int {
	n := L.GetTop()
	if n < 2 || n > 4 {
		sockRaise(L, "ngx.socket connect: expecting 2, 3, or 4 arguments (including the object), but seen %d", n)
	}
	m.checkContext(L)
	s := m.tcpSelf(L, "connect")
	host := L.CheckString(2)

	var (
		poolName string
		poolSize int
		backlog  = -1
	)
	if opts, ok := L.Get(n).(*lua.LTable); ok {
		switch v := opts.RawGetString("pool").(type) {
		case lua.LString:
			poolName = string(v)
		case lua.LNumber:
			poolName = string(AppendNumber(nil, float64(v)))
		case *lua.LNilType:
		default:
			sockRaise(L, `bad "pool" option type: %s`, v.Type().String())
		}
		if v, ok := opts.RawGetString("pool_size").(lua.LNumber); ok {
			poolSize = int(v)
			if poolSize <= 0 {
				sockRaise(L, `bad argument #%d to '?' (bad "pool_size" option value: %d)`, n, poolSize)
			}
		}
		if v, ok := opts.RawGetString("backlog").(lua.LNumber); ok {
			backlog = int(v)
			if backlog < 0 {
				sockRaise(L, `bad argument #%d to '?' (bad "backlog" option value: %d)`, n, backlog)
			}
		}
		n--
	}

	if s == nil {
		// A table that is not (yet) a socket gets one, as nginx creates
		// its upstream on the first connect.
		s = &tcpSock{m: m}
		ud := L.NewUserData()
		ud.Value = s
		L.CheckTable(1).RawSetInt(1, ud)
	}
	if s.c != nil {
		// Connecting again closes the current connection first.
		s.c.close()
		s.c = nil
	}

	network, addr, key := "tcp", "", poolName
	if strings.HasPrefix(host, "unix:") {
		network, addr = "unix", host[5:]
		if key == "" {
			key = host
		}
	} else {
		port := 0
		if n >= 3 {
			if p, ok := L.Get(3).(lua.LNumber); ok {
				port = int(p)
			} else if p, err := strconv.ParseFloat(strings.TrimSpace(lua.LVAsString(L.Get(3))), 64); err == nil {
				port = int(p)
			}
		}
		if port < 0 || port > 65535 {
			return pushNilErr(L, "bad port number: "+strconv.Itoa(port))
		}
		if port == 0 {
			return pushNilErr(L, "missing the port number")
		}
		if host != m.lastHost || port != m.lastPort {
			m.lastHost, m.lastPort = host, port
			m.lastKey = host + ":" + strconv.Itoa(port)
			m.lastAddr = net.JoinHostPort(host, strconv.Itoa(port))
		}
		if key == "" {
			key = m.lastKey
		}
		addr = m.lastAddr
	}

	set := m.settings()
	if poolSize <= 0 {
		poolSize = set.PoolSize
	}
	timeout := s.connectTO
	if timeout <= 0 {
		timeout = set.ConnectTimeout
	}
	c, errMsg := m.dialPooled(key, poolSize, backlog, network, addr, host, timeout)
	if c == nil {
		return pushNilErr(L, errMsg)
	}
	s.c = c
	m.track(s)
	L.Push(lua.LNumber(1))
	return 1
}

// dialPooled returns an idle connection of the pool named key, or dials a
// new one. With a backlog, connections beyond the pool size wait for one to
// come back, as OpenResty's connect queue does.
func (m *sockModule) dialPooled(key string, size, backlog int, network, addr, host string, timeout time.Duration) (*sockConn, string) {
	deadline := m.deadline(timeout)
	for {
		c, p, wait, err := cosocketPools.acquire(key, size, backlog)
		if c != nil {
			if connAlive(c) {
				c.reused++
				return c, ""
			}
			c.close()
			continue
		}
		if err != nil {
			return nil, err.Error()
		}
		if wait != nil {
			if !cosocketPools.wait(p, wait, deadline) {
				m.logErr(LogErr, "lua tcp socket queued connect timed out, when trying to connect to "+addr)
				m.vm.run.expire()
				return nil, "timeout"
			}
			continue
		}
		ctx, cancel := context.WithDeadline(m.parentContext(), deadline)
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		cancel()
		if err != nil {
			cosocketPools.release(p)
			name := addr
			if network == "unix" {
				name = "unix:" + addr
			} else if ra := dialedAddr(err); ra != "" {
				name = ra
			}
			return nil, m.ioError(err, sockConnect, name, "tcp")
		}
		return newSockConn(nc, p), ""
	}
}

// dialedAddr digs the address a failed dial tried out of its error.
func dialedAddr(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Addr != nil {
		return op.Addr.String()
	}
	return ""
}

// ---- tcp: sslhandshake ----

// sockSession is what sslhandshake returns for a session (OpenResty's
// ssl_session cdata); Go's session cache resumes sessions by itself, so one
// passed back in changes nothing.
type sockSession struct{}

// tcpSSLHandshake: session, err = sock:sslhandshake(reused_session?,
// server_name?, ssl_verify?, send_status_req?)
func (m *sockModule) tcpSSLHandshake(L *lua.LState) int {
	n := L.GetTop()
	if n < 1 || n > 5 {
		sockRaise(L, "ngx.socket sslhandshake: expecting 1 ~ 5 arguments (including the object), but seen %d", n)
	}
	s := m.tcpSelf(L, "sslhandshake")
	if s == nil || s.c == nil {
		return pushNilErr(L, "closed")
	}
	reuse := L.Get(2)
	serverName := ""
	switch v := L.Get(3).(type) {
	case lua.LString:
		serverName = string(v)
	case *lua.LNilType:
	default:
		if v != lua.LFalse {
			sockRaise(L, "bad server name argument")
		}
	}
	verify := lua.LVAsBool(L.Get(4))
	push := func() int {
		if reuse == lua.LFalse {
			L.Push(lua.LTrue)
			return 1
		}
		ud := L.NewUserData()
		ud.Value = sockSession{}
		L.Push(ud)
		return 1
	}
	c := s.c
	if c.isTLS {
		return push()
	}
	cfg := rmcTLSConfig(serverName, verify)
	cfg.ClientSessionCache = cosocketSessionCache
	tc := tls.Client(c.raw, cfg)
	timeout := s.connectTO
	if timeout <= 0 {
		timeout = m.settings().ConnectTimeout
	}
	ctx, cancel := context.WithDeadline(m.parentContext(), m.deadline(timeout))
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		c.close()
		s.c = nil
		msg, line := rmcTLSError(err, serverName)
		if msg == "" {
			return pushNilErr(L, m.ioError(err, sockRecv, "", "tcp"))
		}
		m.logErr(LogErr, line)
		return pushNilErr(L, msg)
	}
	c.nc, c.isTLS = tc, true
	return push()
}

// cosocketSessionCache lets TLS connections to the same server resume
// sessions, as passing reused_session does in OpenResty. It is
// process-wide like the keepalive pools.
var cosocketSessionCache = tls.NewLRUClientSessionCache(256)

// ---- tcp: send ----

// tcpSend: bytes, err = sock:send(data)
func (m *sockModule) tcpSend(L *lua.LState) int {
	if n := L.GetTop(); n != 2 {
		sockRaise(L, "expecting 2 arguments (including the object), but got %d", n)
	}
	s := m.tcpSelf(L, "send")
	if s == nil || s.c == nil {
		m.logClosed("send")
		return pushNilErr(L, "closed")
	}
	b := m.appendData(L, L.Get(2))
	if len(b) == 0 {
		L.Push(lua.LNumber(0))
		return 1
	}
	c := s.c
	timeout := s.sendTO
	if timeout <= 0 {
		timeout = m.settings().SendTimeout
	}
	c.nc.SetWriteDeadline(m.deadline(timeout)) //nolint:errcheck // a closed conn fails the write
	if _, err := c.nc.Write(b); err != nil {
		msg := m.ioError(err, sockSend, "", "tcp")
		if msg != "timeout" {
			c.close()
			s.c = nil
		}
		return pushNilErr(L, msg)
	}
	L.Push(lua.LNumber(len(b)))
	return 1
}

// appendData formats send's argument into the module's scratch: strings,
// numbers (as LuaJIT prints them), booleans, nil, ngx.null and nested array
// tables of those.
func (m *sockModule) appendData(L *lua.LState, v lua.LValue) []byte {
	var b []byte
	switch v := v.(type) {
	case lua.LString:
		// the common case needs no copy into scratch
		return unsafe.Slice(unsafe.StringData(string(v)), len(v))
	case lua.LBool:
		b = strconv.AppendBool(m.scratch[:0], bool(v))
	case *lua.LNilType:
		b = append(m.scratch[:0], "nil"...)
	case lua.LNumber, *lua.LTable:
		b = appendSendData(L, m.scratch[:0], v)
	default:
		sockArgError(L, 2, "string, number, boolean, nil, or array table expected, got "+typeName(v))
	}
	m.scratch = b[:0]
	return b
}

// typeName is lua_typename's: ngx.null and other light userdata are
// "userdata".
func typeName(v lua.LValue) string {
	if v == Null {
		return "userdata"
	}
	return v.Type().String()
}

// appendSendData appends a number or a table: inside tables only strings,
// numbers and tables are data, as in lua-nginx-module.
func appendSendData(L *lua.LState, b []byte, v lua.LValue) []byte {
	switch v := v.(type) {
	case lua.LString:
		return append(b, v...)
	case lua.LNumber:
		return AppendNumber(b, float64(v))
	case *lua.LTable:
		n := v.Len()
		for k, _ := v.Next(lua.LNil); k != lua.LNil; k, _ = v.Next(k) {
			kn, ok := k.(lua.LNumber)
			if !ok || float64(kn) != float64(int(kn)) || int(kn) < 1 || int(kn) > n {
				sockArgError(L, 2, "non-array table found")
			}
		}
		for i := 1; i <= n; i++ {
			b = appendSendData(L, b, v.RawGetInt(i))
		}
		return b
	}
	sockArgError(L, 2, "bad data type "+typeName(v)+" found")
	return b
}

// ---- tcp: receive ----

// fill reads more bytes into the connection's buffer, growing it when it
// is full of data not yet returned.
func (s *tcpSock) fill() error {
	c := s.c
	if c.eof {
		return io.EOF
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if c.w == len(c.buf) {
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		} else {
			nb := make([]byte, 2*len(c.buf))
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
	}
	timeout := s.readTO
	if timeout <= 0 {
		timeout = s.m.settings().ReadTimeout
	}
	c.nc.SetReadDeadline(s.m.deadline(timeout)) //nolint:errcheck // a closed conn fails the read
	for {
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readFailed turns a read error into the Lua results: a timeout keeps the
// connection (lua-nginx-module stopped closing it on read timeouts in
// 0.8.8), any other error ends its reading side.
func (s *tcpSock) readFailed(L *lua.LState, err error, partial []byte) int {
	return pushNilErrPartial(L, s.readError(err), partial)
}

// readError logs a read error and returns its string, closing the
// connection unless it was a timeout.
func (s *tcpSock) readError(err error) string {
	msg := s.m.ioError(err, sockRecv, "", "tcp")
	if msg != "timeout" {
		s.c.readClosed = true
	}
	return msg
}

// readable reports whether receive may read, logging nginx's line when not.
func (s *tcpSock) readable() bool {
	if s == nil || s.c == nil || s.c.readClosed {
		if s != nil {
			s.m.logClosed("receive")
		}
		return false
	}
	return true
}

// tcpReceive: data, err, partial = sock:receive(size | "*l" | "*a")
func (m *sockModule) tcpReceive(L *lua.LState) int {
	n := L.GetTop()
	if n != 1 && n != 2 {
		sockRaise(L, "expecting 1 or 2 arguments (including the object), but got %d", n)
	}
	s := m.tcpSelf(L, "receive")
	if !s.readable() {
		return pushNilErr(L, "closed")
	}
	pattern := byte('l')
	size := 0
	if n == 2 {
		switch v := L.Get(2).(type) {
		case lua.LNumber:
			size, pattern = int(v), 0
		case lua.LString:
			if f, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64); err == nil {
				size, pattern = int(f), 0
				break
			}
			if len(v) != 2 || v[0] != '*' || (v[1] != 'l' && v[1] != 'a') {
				sockArgError(L, 2, "bad pattern argument")
			}
			pattern = v[1]
		default:
			sockArgError(L, 2, "bad pattern argument")
		}
		if pattern == 0 && size < 0 {
			sockArgError(L, 2, "bad pattern argument")
		}
	}
	c := s.c
	switch pattern {
	case 'l':
		return s.receiveLine(L)
	case 'a':
		for {
			if err := s.fill(); err != nil {
				data := c.buf[c.r:c.w]
				c.r = c.w
				if errors.Is(err, io.EOF) {
					c.eof = true
					L.Push(lua.LString(data))
					return 1
				}
				return s.readFailed(L, err, data)
			}
		}
	}
	if size == 0 {
		L.Push(lua.LString(""))
		return 1
	}
	for c.w-c.r < size {
		if err := s.fill(); err != nil {
			data := c.buf[c.r:c.w]
			c.r = c.w
			return s.readFailed(L, err, data)
		}
	}
	L.Push(lua.LString(c.buf[c.r : c.r+size]))
	c.r += size
	return 1
}

// receiveLine reads up to LF and drops every CR, as "*l" does.
func (s *tcpSock) receiveLine(L *lua.LState) int {
	c := s.c
	scanned := 0
	for {
		if i := indexByte(c.buf[c.r+scanned:c.w], '\n'); i >= 0 {
			line := stripCR(s.m, c.buf[c.r:c.r+scanned+i])
			c.r += scanned + i + 1
			L.Push(lua.LString(line))
			return 1
		}
		scanned = c.w - c.r
		if err := s.fill(); err != nil {
			partial := stripCR(s.m, c.buf[c.r:c.w])
			c.r = c.w
			return s.readFailed(L, err, partial)
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// stripCR returns b without CRs, in the module's scratch when it has any.
func stripCR(m *sockModule, b []byte) []byte {
	if indexByte(b, '\r') < 0 {
		return b
	}
	out := m.scratch[:0]
	for _, x := range b {
		if x != '\r' {
			out = append(out, x)
		}
	}
	m.scratch = out[:0]
	return out
}

// tcpReceiveAny: data, err = sock:receiveany(max)
func (m *sockModule) tcpReceiveAny(L *lua.LState) int {
	if n := L.GetTop(); n != 2 {
		sockRaise(L, "expecting 2 arguments (including the object), but got %d", n)
	}
	s := m.tcpSelf(L, "receiveany")
	if !s.readable() {
		return pushNilErr(L, "closed")
	}
	max := 0
	switch v := L.Get(2).(type) {
	case lua.LNumber:
		max = int(v)
	case lua.LString:
		f, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64)
		if err != nil {
			sockArgError(L, 2, "bad max argument")
		}
		max = int(f)
	default:
		sockArgError(L, 2, "bad max argument")
	}
	if max <= 0 {
		sockArgError(L, 2, "bad max argument")
	}
	c := s.c
	if c.r == c.w {
		if err := s.fill(); err != nil {
			return pushNilErrPartial(L, s.readError(err), nil)
		}
	}
	k := min(max, c.w-c.r)
	L.Push(lua.LString(c.buf[c.r : c.r+k]))
	c.r += k
	return 1
}

// ---- tcp: receiveuntil ----

// untilReader is the state of one receiveuntil iterator. It matches the
// pattern exactly as lua-nginx-module does: bytes that match a prefix of
// the pattern are held back, and on a mismatch either a recovering edge of
// nginx's DFA keeps a shorter prefix or everything held back is released.
// Sized reads count released bytes the same way, so chunk boundaries agree
// with OpenResty's byte for byte.
type untilReader struct {
	s   *tcpSock
	pat []byte
	// recovering[state-2] are the DFA edges out of state on a mismatch.
	recovering [][]untilEdge
	state      int
	inclusive  bool
	// ended: the last sized read stopped at the pattern, so the next call
	// reports the end of this chunk (nil, nil, nil).
	ended bool
}

type untilEdge struct {
	c        byte
	newState int
}

// compileUntil builds nginx's recovering edges
// (ngx_http_lua_socket_compile_pattern).
func compileUntil(pat []byte) [][]untilEdge {
	n := len(pat)
	if n <= 2 {
		return nil
	}
	var rec [][]untilEdge
	for i := 1; i < n; i++ {
		for prefix := 1; prefix <= n-i-1; {
			if string(pat[:prefix]) != string(pat[i:i+prefix]) {
				break
			}
			if pat[prefix] == pat[i+prefix] {
				prefix++
				continue
			}
			cur, next := i+prefix, prefix+1
			if rec == nil {
				rec = make([][]untilEdge, n-2)
			}
			found := false
			for k := range rec[cur-2] {
				e := &rec[cur-2][k]
				if e.c == pat[prefix] {
					found = true
					e.newState = max(e.newState, next)
					break
				}
			}
			if !found {
				rec[cur-2] = append(rec[cur-2], untilEdge{pat[prefix], next})
			}
			break
		}
	}
	return rec
}

// tcpReceiveUntil: iterator = sock:receiveuntil(pattern, {inclusive = bool}?)
func (m *sockModule) tcpReceiveUntil(L *lua.LState) int {
	n := L.GetTop()
	if n != 2 && n != 3 {
		sockRaise(L, "expecting 2 or 3 arguments (including the object), but got %d", n)
	}
	s := m.tcpSelf(L, "receiveuntil")
	pat := L.CheckString(2)
	if pat == "" {
		return pushNilErr(L, "pattern is empty")
	}
	inclusive := false
	if n == 3 {
		opts := L.CheckTable(3)
		switch v := opts.RawGetString("inclusive").(type) {
		case lua.LBool:
			inclusive = bool(v)
		case *lua.LNilType:
		default:
			sockRaise(L, `bad "inclusive" option value type: %s`, v.Type().String())
		}
	}
	u := &untilReader{s: s, pat: []byte(pat), inclusive: inclusive}
	u.recovering = compileUntil(u.pat)
	L.Push(L.NewFunction(u.read))
	return 1
}

func (u *untilReader) edge(state int, c byte) int {
	if u.recovering == nil || state < 2 {
		return 0
	}
	for _, e := range u.recovering[state-2] {
		if e.c == c {
			return e.newState
		}
	}
	return 0
}

// read: data, err, partial = reader(size?)
func (u *untilReader) read(L *lua.LState) int {
	s := u.s
	size := 0
	if L.GetTop() >= 1 {
		size = L.CheckInt(1)
		if size < 0 {
			size = 0
		}
	}
	if !s.readable() {
		return pushNilErr(L, "closed")
	}
	m := s.m
	if u.ended {
		u.ended = false
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		return 3
	}
	c := s.c
	out := m.scratch[:0]
	rest := size
	for {
		n, done := 0, false
		n, out, done = u.scan(c.buf[c.r:c.w], out, &rest, size > 0)
		c.r += n
		if done {
			m.scratch = out[:0]
			L.Push(lua.LString(out))
			return 1
		}
		if err := s.fill(); err != nil {
			m.scratch = out[:0]
			return s.readFailed(L, err, out)
		}
	}
}

// scan runs the matcher over in, appending the bytes that are data to out.
// It returns how much of in it consumed and whether the chunk is complete:
// the pattern was reached, or (sized) *rest bytes were released.
func (u *untilReader) scan(in, out []byte, rest *int, sized bool) (int, []byte, bool) {
	pat := u.pat
	i := 0
	for i < len(in) {
		ch := in[i]
		st := u.state
		if ch == pat[st] {
			i++
			st++
			if st == len(pat) {
				if u.inclusive {
					out = append(out, pat...)
				}
				u.state = 0
				u.ended = sized
				return i, out, true
			}
			u.state = st
			continue
		}
		if st == 0 {
			i++
			out = append(out, ch)
			if sized {
				if *rest--; *rest == 0 {
					return i, out, true
				}
			}
			continue
		}
		var pending int
		if ns := u.edge(st, ch); ns > 0 {
			i++
			pending = st + 1 - ns
			u.state = ns
		} else {
			// everything held back is data; ch is looked at again from
			// the start of the pattern
			pending = st
			u.state = 0
		}
		out = append(out, pat[:pending]...)
		if sized {
			if *rest <= pending {
				return i, out, true
			}
			*rest -= pending
		}
	}
	return i, out, false
}

// ---- tcp: timeouts, options ----

// checkTimeout reads a timeout in ms as lua_tonumber does (anything not a
// number is 0, the default).
func checkTimeout(L *lua.LState, n int) time.Duration {
	v := int64(lua.LVAsNumber(L.Get(n)))
	if v>>31 != 0 {
		sockRaise(L, "bad timeout value")
	}
	return time.Duration(v) * time.Millisecond
}

// tcpSetTimeout: sock:settimeout(ms); 0 restores the lua_socket_* defaults.
func (m *sockModule) tcpSetTimeout(L *lua.LState) int {
	if n := L.GetTop(); n != 2 {
		sockRaise(L, "ngx.socket settimeout: expecting 2 arguments (including the object) but seen %d", n)
	}
	t := checkTimeout(L, 2)
	s := m.adopt(L)
	s.connectTO, s.sendTO, s.readTO = t, t, t
	return 0
}

// adopt gives a plain table a socket, as connect does.
func (m *sockModule) adopt(L *lua.LState) *tcpSock {
	if s := m.tcpSelf(L, "settimeout"); s != nil {
		return s
	}
	s := &tcpSock{m: m}
	ud := L.NewUserData()
	ud.Value = s
	L.CheckTable(1).RawSetInt(1, ud)
	return s
}

// tcpSetTimeouts: sock:settimeouts(connect_ms, send_ms, read_ms)
func (m *sockModule) tcpSetTimeouts(L *lua.LState) int {
	if n := L.GetTop(); n != 4 {
		// lua-nginx-module's message names settimeout here too.
		sockRaise(L, "ngx.socket settimeout: expecting 4 arguments (including the object) but seen %d", n)
	}
	ct, st, rt := checkTimeout(L, 2), checkTimeout(L, 3), checkTimeout(L, 4)
	s := m.adopt(L)
	s.connectTO, s.sendTO, s.readTO = ct, st, rt
	return 0
}

// tcpSetOption: ok, err = sock:setoption(option, value)
func (m *sockModule) tcpSetOption(L *lua.LState) int {
	s := m.tcpSelf(L, "setoption")
	if L.Get(2) == lua.LNil {
		return pushNilErr(L, `missing the "option" argument`)
	}
	if L.Get(3) == lua.LNil {
		return pushNilErr(L, `missing the "value" argument`)
	}
	opt := lua.LVAsString(L.Get(2))
	switch opt {
	case "keepalive", "reuseaddr", "tcp-nodelay", "sndbuf", "rcvbuf":
	default:
		return pushNilErr(L, "unsupported option "+L.Get(2).String())
	}
	if s == nil || s.c == nil {
		return pushNilErr(L, "closed")
	}
	on := lua.LVAsBool(L.Get(3))
	if v, ok := L.Get(3).(lua.LNumber); ok {
		on = v != 0
	}
	num := int(lua.LVAsNumber(L.Get(3)))
	var err error
	switch rc := s.c.raw.(type) {
	case *net.TCPConn:
		switch opt {
		case "keepalive":
			err = rc.SetKeepAlive(on)
		case "tcp-nodelay":
			err = rc.SetNoDelay(on)
		case "sndbuf":
			err = rc.SetWriteBuffer(num)
		case "rcvbuf":
			err = rc.SetReadBuffer(num)
		case "reuseaddr":
			err = setReuseAddr(rc, on)
		}
	case *net.UnixConn:
		switch opt {
		case "sndbuf":
			err = rc.SetWriteBuffer(num)
		case "rcvbuf":
			err = rc.SetReadBuffer(num)
		}
	}
	if err != nil {
		return pushNilErr(L, err.Error())
	}
	L.Push(lua.LTrue)
	return 1
}

// ---- tcp: keepalive, close ----

// tcpSetKeepalive: ok, err = sock:setkeepalive(max_idle_ms?, pool_size?)
func (m *sockModule) tcpSetKeepalive(L *lua.LState) int {
	n := L.GetTop()
	if n < 1 || n > 3 {
		sockRaise(L, "expecting 1 to 3 arguments (including the object), but got %d", n)
	}
	s := m.tcpSelf(L, "setkeepalive")
	if s == nil || s.c == nil {
		return pushNilErr(L, "closed")
	}
	c := s.c
	// nginx looks at the connection before the arguments.
	if c.eof || c.readClosed {
		return pushNilErr(L, "closed")
	}
	if c.r < c.w {
		// The socket stays usable: the caller may read the rest.
		return pushNilErr(L, "unread data in buffer")
	}
	set := m.settings()
	idle := set.KeepaliveTimeout
	if n >= 2 && L.Get(2) != lua.LNil {
		if _, ok := L.Get(2).(lua.LNumber); !ok {
			if _, err := strconv.ParseFloat(strings.TrimSpace(lua.LVAsString(L.Get(2))), 64); err != nil {
				sockArgError(L, 2, "number expected, got "+typeName(L.Get(2)))
			}
		}
		idle = checkTimeout(L, 2)
	}
	size := set.PoolSize
	if n >= 3 && L.Get(3) != lua.LNil {
		size = L.CheckInt(3)
		if size <= 0 {
			sockRaise(L, `bad "pool_size" option value: %d`, size)
		}
	}
	// A peer that closed the idle connection is noticed when the pool
	// hands it out again, as nginx notices it through the idle read event.
	c.r, c.w = 0, 0
	if len(c.buf) > 16*sockBufSize {
		// one huge read must not pin its buffer in the pool
		c.buf = make([]byte, sockBufSize)
	}
	s.c = nil
	cosocketPools.put(c, idle, size)
	L.Push(lua.LNumber(1))
	return 1
}

// tcpGetReusedTimes: count, err = sock:getreusedtimes()
func (m *sockModule) tcpGetReusedTimes(L *lua.LState) int {
	s := m.tcpSelf(L, "getreusedtimes")
	if s == nil || s.c == nil {
		return pushNilErr(L, "closed")
	}
	L.Push(lua.LNumber(s.c.reused))
	return 1
}

// tcpClose: ok, err = sock:close()
func (m *sockModule) tcpClose(L *lua.LState) int {
	s := m.tcpSelf(L, "close")
	if s == nil || s.c == nil {
		return pushNilErr(L, "closed")
	}
	s.c.close()
	s.c = nil
	L.Push(lua.LNumber(1))
	return 1
}

func contextWithDeadline(m *sockModule, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithDeadline(m.parentContext(), m.deadline(timeout))
}
