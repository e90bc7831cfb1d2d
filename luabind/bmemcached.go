package luabind

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	lua "github.com/yuin/gopher-lua"

	"luaserve/memcached"
)

// resty.bmemcached: the cluster → bucket → session API of the OpenResty
// library of that name, over the memcached binary protocol. Cluster and
// bucket are per-VM handles; the connection pools behind a bucket are
// process-wide (vm.MemcachedPools), keyed by server, bucket and credentials,
// so every VM that builds the same bucket shares one set of connections.
// Operational failures are raised as Lua errors, as the library "throws the
// error"; memcached statuses (miss, exists, not stored) are results.
//
// What a porter may notice:
//   - host/port name a memcached server (not a Couchbase REST API); a bucket
//     name only separates connection pools, since memcached has no buckets.
//   - Synchronous calls are sent with opaque 0, so their results show
//     opaque 0 as the library's do; quiet and async requests get opaques
//     unique within the VM.
//   - Synchronous calls of a session that has no connection of its own to
//     the server yet (no quiet op, send or stat there) are pipelined on the
//     bucket's shared connections (memcached.Mux, at most two per server
//     for the whole process), not on a pooled one: the server sees far fewer
//     connections; a timeout there fails only the calls whose deadline has
//     passed.
//   - Quiet/async results carry the socket as userdata in peer, so (as in
//     OpenResty) cjson.encode cannot print them.
//   - receive(peer, {opaque = n}) answers nil for a quiet request that
//     succeeded (the server sends nothing); batch gives such items a
//     "No error" result.
//   - batch runs thread_pool_size workers on their own pooled connections;
//     items with the same key go to the same worker, so they keep their order.
//   - query (N1QL) raises: there is no Couchbase query service here.

func init() {
	vmOpeners = append(vmOpeners, openBmemcached)
}

func openBmemcached(vm *VM) {
	m := &bmem{vm: vm}
	vm.L.PreloadModule("resty.bmemcached", m.loader)
	vm.L.PreloadModule("resty.bmemcached.consts", bmemConstsLoader)
	// The library's async examples require the constants under this name.
	vm.L.PreloadModule("resty.memcached.consts", bmemConstsLoader)
}

// bmem is the module's per-VM state.
type bmem struct {
	vm     *VM
	opaque uint32 // last opaque handed out; unique across a VM's sessions
	resp   memcached.Response
	extras [20]byte

	clusterMT, bucketMT, sessionMT, connMT *lua.LTable

	// Sessions that opened connections in the current request, released
	// by requestEnd (registered once per request, as endFn).
	active []*bmemSession
	hooked bool
	endFn  func()
}

// nextOpaque returns a fresh non-zero opaque: zero is reserved for the
// synchronous calls, whose results show opaque 0 as the library's do.
func (m *bmem) nextOpaque() uint32 {
	m.opaque++
	if m.opaque == 0 {
		m.opaque = 1
	}
	return m.opaque
}

func (m *bmem) loader(L *lua.LState) int {
	mod := L.CreateTable(0, 4)
	mod.RawSetString("_VERSION", lua.LString("0.1"))
	mod.RawSetString("cluster", L.NewFunction(m.newCluster))
	m.clusterMT = m.metatable(L, "bmemcached.cluster", map[string]lua.LGFunction{
		"bucket": m.newBucket,
	})
	m.bucketMT = m.metatable(L, "bmemcached.bucket", map[string]lua.LGFunction{
		"session": m.newSession,
	})
	m.sessionMT = m.metatable(L, "bmemcached.session", m.sessionMethods())
	m.connMT = m.metatable(L, "bmemcached.socket", nil)
	L.Push(mod)
	return 1
}

func (m *bmem) metatable(L *lua.LState, name string, methods map[string]lua.LGFunction) *lua.LTable {
	mt := L.CreateTable(0, 3)
	idx := L.CreateTable(0, len(methods))
	for k, fn := range methods {
		idx.RawSetString(k, L.NewFunction(fn))
	}
	mt.RawSetString("__index", idx)
	mt.RawSetString("__metatable", lua.LString(name))
	label := lua.LString(name)
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		L.Push(label)
		return 1
	}))
	return mt
}

// bmemCluster is a set of servers with credentials; immutable once built.
type bmemCluster struct {
	addrs          []string
	sel            memcached.Selector // nil for a single server
	user, password string
	timeout        time.Duration
}

// pick returns the index of the server that owns key.
func (c *bmemCluster) pick(key string) (int, error) {
	if c.sel == nil {
		return 0, nil
	}
	return c.sel.Pick(key)
}

var bmemClusterOpts = map[string]bool{"host": true, "port": true, "socket": true, "servers": true, "user": true, "password": true, "timeout": true}

func (m *bmem) newCluster(L *lua.LState) int {
	opts := L.OptTable(1, nil)
	if opts == nil {
		opts = L.CreateTable(0, 0)
	}
	if err := bmemCheckOptNames(opts, bmemClusterOpts); err != "" {
		L.RaiseError("bmemcached.cluster: %s", err)
	}
	host := bmemOptString(L, opts, "bmemcached.cluster", "host", "127.0.0.1")
	socket := bmemOptString(L, opts, "bmemcached.cluster", "socket", "")
	port := bmemOptInt(L, opts, "bmemcached.cluster", "port", 11211)
	if port <= 0 || port > 65535 {
		L.RaiseError("bmemcached.cluster: port %d out of range 1-65535", port)
	}
	c := &bmemCluster{
		user:     bmemOptString(L, opts, "bmemcached.cluster", "user", ""),
		password: bmemOptString(L, opts, "bmemcached.cluster", "password", ""),
		timeout:  bmemOptMillis(L, opts, "bmemcached.cluster", "timeout"),
	}
	if c.password != "" && c.user == "" {
		L.RaiseError("bmemcached.cluster: password given without user")
	}
	switch servers := opts.RawGetString("servers").(type) {
	case *lua.LNilType:
		if host == "" {
			L.RaiseError("bmemcached.cluster: host must not be empty")
		}
		if socket != "" {
			c.addrs = []string{socket}
		} else {
			c.addrs = []string{net.JoinHostPort(host, strconv.Itoa(port))}
		}
	case *lua.LTable:
		if opts.RawGetString("host") != lua.LNil || socket != "" {
			L.RaiseError("bmemcached.cluster: give either servers or host/socket, not both")
		}
		var list []string
		for i := 1; ; i++ {
			v := servers.RawGetInt(i)
			if v == lua.LNil {
				break
			}
			s, ok := v.(lua.LString)
			if !ok {
				L.RaiseError("bmemcached.cluster: servers[%d] must be a \"host:port\" string, got %s", i, v.Type())
			}
			list = append(list, string(s))
		}
		if len(list) == 0 {
			L.RaiseError("bmemcached.cluster: servers must list at least one \"host:port\"")
		}
		srvs, err := memcached.ParseServers(list)
		if err != nil {
			L.RaiseError("bmemcached.cluster: %s", strings.TrimPrefix(err.Error(), "memcached: "))
		}
		for _, s := range srvs {
			c.addrs = append(c.addrs, s.Addr)
		}
		if len(srvs) > 1 {
			sel, err := memcached.NewKetama(srvs)
			if err != nil {
				L.RaiseError("bmemcached.cluster: %s", strings.TrimPrefix(err.Error(), "memcached: "))
			}
			c.sel = sel
		}
	default:
		L.RaiseError("bmemcached.cluster: servers must be a table of \"host:port\" strings, got %s", servers.Type())
	}
	ud := L.NewUserData()
	ud.Value = c
	ud.Metatable = m.clusterMT
	L.Push(ud)
	return 1
}

// bmemBucket is a named bucket of a cluster: one process-wide pool per
// server.
type bmemBucket struct {
	cl        *bmemCluster
	name      string
	pools     []*memcached.Pool
	muxes     []*memcached.Mux // the pools' shared transports, for sync ops
	peerNames []lua.LString    // "addr/bucket", as the library names a pool
	timeout   time.Duration    // socket timeout; 0: the request's lua_socket_* defaults
	poolSize  int              // 0: lua_socket_pool_size
	poolIdle  time.Duration    // 0: lua_socket_keepalive_timeout
}

var bmemBucketOpts = map[string]bool{"name": true, "password": true, "timeout": true, "pool_size": true, "pool_idle": true}

func (m *bmem) newBucket(L *lua.LState) int {
	c := bmemCheckUD[*bmemCluster](L, "cluster", "bucket")
	opts := L.OptTable(2, nil)
	if opts == nil {
		opts = L.CreateTable(0, 0)
	}
	if err := bmemCheckOptNames(opts, bmemBucketOpts); err != "" {
		L.RaiseError("cluster:bucket: %s", err)
	}
	b := &bmemBucket{
		cl:       c,
		name:     bmemOptString(L, opts, "cluster:bucket", "name", "default"),
		timeout:  bmemOptMillis(L, opts, "cluster:bucket", "timeout"),
		poolSize: bmemOptInt(L, opts, "cluster:bucket", "pool_size", 0),
	}
	if b.name == "" {
		L.RaiseError("cluster:bucket: name must not be empty")
	}
	if b.poolSize < 0 {
		L.RaiseError("cluster:bucket: pool_size must not be negative")
	}
	if v := opts.RawGetString("pool_idle"); v != lua.LNil {
		n, ok := v.(lua.LNumber)
		if !ok || n < 0 {
			L.RaiseError("cluster:bucket: pool_idle must be a non-negative number of seconds")
		}
		b.poolIdle = time.Duration(float64(n) * float64(time.Second))
	}
	if b.timeout == 0 {
		b.timeout = c.timeout
	}
	// The bucket password authenticates as the bucket (Couchbase's SASL
	// convention); otherwise the cluster's user, if any.
	user, pass := c.user, c.password
	if p := bmemOptString(L, opts, "cluster:bucket", "password", ""); p != "" {
		user, pass = b.name, p
	}
	connect := b.timeout
	if connect == 0 {
		connect = m.vm.Request().SocketDefaults().ConnectTimeout
	}
	pools := m.vm.MemcachedPools()
	for _, addr := range c.addrs {
		peer := addr + "/" + b.name
		key := bmemPoolKey(peer, user, pass, connect)
		pool := pools.Pool(key, addr, &memcached.Options{
			ConnectTimeout: connect, Username: user, Password: pass,
		})
		b.pools = append(b.pools, pool)
		b.muxes = append(b.muxes, pool.Mux())
		b.peerNames = append(b.peerNames, lua.LString(peer))
	}
	ud := L.NewUserData()
	ud.Value = b
	ud.Metatable = m.bucketMT
	L.Push(ud)
	return 1
}

// bmemPoolKey names a bucket's pool for one server in the process-wide
// registry: everything that decides how its connections are made.
func bmemPoolKey(peer, user, pass string, connect time.Duration) string {
	return "bmemcached " + peer + "\x00" + user + "\x00" + pass + "\x00" + connect.String()
}

func (m *bmem) newSession(L *lua.LState) int {
	b := bmemCheckUD[*bmemBucket](L, "bucket", "session")
	s := &bmemSession{m: m, b: b}
	if len(b.pools) == 1 {
		s.conns, s.shared = s.one[:], s.sharedOne[:]
	} else {
		s.conns, s.shared = make([]*bmemConn, len(b.pools)), make([]bool, len(b.pools))
	}
	ud := L.NewUserData()
	ud.Value = s
	ud.Metatable = m.sessionMT
	L.Push(ud)
	return 1
}

// bmemCheckUD returns argument 1 as the Go object of a bmemcached handle.
func bmemCheckUD[T any](L *lua.LState, what, method string) T {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if v, ok := ud.Value.(T); ok {
			return v
		}
	}
	L.RaiseError("bad argument #1 to '%s' (%s expected; call it as %s:%s(...))", method, what, what, method)
	var zero T
	return zero
}

func bmemCheckOptNames(opts *lua.LTable, known map[string]bool) string {
	var bad string
	opts.ForEach(func(k, _ lua.LValue) {
		if s, ok := k.(lua.LString); !ok || !known[string(s)] {
			if bad == "" {
				bad = "unknown option " + strconv.Quote(lua.LVAsString(k))
				if !ok {
					bad = "unknown option " + k.String()
				}
			}
		}
	})
	return bad
}

func bmemOptString(L *lua.LState, opts *lua.LTable, fn, name, def string) string {
	switch v := opts.RawGetString(name).(type) {
	case *lua.LNilType:
		return def
	case lua.LString:
		return string(v)
	default:
		L.RaiseError("%s: option %s must be a string, got %s", fn, name, v.Type())
	}
	return ""
}

func bmemOptInt(L *lua.LState, opts *lua.LTable, fn, name string, def int) int {
	switch v := opts.RawGetString(name).(type) {
	case *lua.LNilType:
		return def
	case lua.LNumber:
		if float64(v) != float64(int(v)) {
			L.RaiseError("%s: option %s must be an integer, got %s", fn, name, v.String())
		}
		return int(v)
	default:
		L.RaiseError("%s: option %s must be a number, got %s", fn, name, v.Type())
	}
	return 0
}

func bmemOptMillis(L *lua.LState, opts *lua.LTable, fn, name string) time.Duration {
	switch v := opts.RawGetString(name).(type) {
	case *lua.LNilType:
		return 0
	case lua.LNumber:
		if v <= 0 {
			L.RaiseError("%s: option %s must be a positive number of milliseconds", fn, name)
		}
		return time.Duration(float64(v) * float64(time.Millisecond))
	default:
		L.RaiseError("%s: option %s must be a number of milliseconds, got %s", fn, name, v.Type())
	}
	return 0
}

// Status texts for header.status. memcached sends its SASL statuses as
// 0x20/0x21 rather than the 0x08/0x09 of the protocol draft; both read the
// same here.
var bmemStatusNames = []struct {
	st   memcached.Status
	name string
}{
	{memcached.StatusNoError, "NoError"},
	{memcached.StatusKeyNotFound, "KeyNotFound"},
	{memcached.StatusKeyExists, "KeyExists"},
	{memcached.StatusValueTooLarge, "ValueTooLarge"},
	{memcached.StatusInvalidArgs, "InvalidArguments"},
	{memcached.StatusItemNotStored, "ItemNotStored"},
	{memcached.StatusNonNumeric, "NonNumeric"},
	{memcached.StatusVBucketElsewhere, "VBucketElsewhere"},
	{memcached.StatusAuthError, "AuthError"},
	{memcached.StatusAuthContinue, "AuthContinue"},
	{0x20, "AuthFailure"},
	{0x21, "AuthStep"},
	{memcached.StatusUnknownCommand, "UnknownCommand"},
	{memcached.StatusOutOfMemory, "OutOfMemory"},
	{memcached.StatusNotSupported, "NotSupported"},
	{memcached.StatusInternalError, "InternalError"},
	{memcached.StatusBusy, "Busy"},
	{memcached.StatusTemporaryFailure, "TemporaryFailure"},
}

func bmemStatusText(s memcached.Status) string {
	switch s {
	case 0x20:
		return memcached.StatusAuthError.String()
	case 0x21:
		return memcached.StatusAuthContinue.String()
	}
	return s.String()
}

// bmemStatusLV holds header.status values as ready Lua strings, by status
// (all known statuses are below 0x100), so building a result neither
// converts a Go string nor looks up a map.
var bmemStatusLV = func() (t [0x100]lua.LValue) {
	for _, s := range bmemStatusNames {
		t[s.st] = lua.LString(bmemStatusText(s.st))
	}
	return t
}()

func bmemStatusValue(s memcached.Status) lua.LValue {
	if s < memcached.Status(len(bmemStatusLV)) && bmemStatusLV[s] != nil {
		return bmemStatusLV[s]
	}
	return lua.LString(s.String())
}

// bmemConstsLoader builds resty.bmemcached.consts: op_code (name → opcode
// byte), status (name → code) and status_desc (code → text).
func bmemConstsLoader(L *lua.LState) int {
	ops := memcached.Opcodes()
	opt := L.CreateTable(0, len(ops))
	for _, op := range ops {
		opt.RawSetString(op.String(), lua.LNumber(op))
	}
	st := L.CreateTable(0, len(bmemStatusNames))
	desc := L.CreateTable(0, len(bmemStatusNames))
	for _, s := range bmemStatusNames {
		st.RawSetString(s.name, lua.LNumber(s.st))
		desc.RawSetInt(int(s.st), lua.LString(bmemStatusText(s.st)))
	}
	mod := L.CreateTable(0, 3)
	mod.RawSetString("op_code", opt)
	mod.RawSetString("status", st)
	mod.RawSetString("status_desc", desc)
	L.Push(mod)
	return 1
}

// bmemErrorText turns a connection-level error into the message raised to
// Lua: the server address, then what went wrong in plain words.
func bmemErrorText(addr string, err error) string {
	var se *memcached.StatusError
	if errors.As(err, &se) && (se.Op == memcached.OpSASLAuth || se.Op == memcached.OpSASLStep) {
		why := se.Body
		if why == "" {
			why = bmemStatusText(se.Status)
		}
		if se.Status == memcached.StatusUnknownCommand {
			why = "the server does not support SASL (" + why + ")"
		}
		return "Not authenticated: " + addr + ": " + why
	}
	if errors.Is(err, memcached.ErrTimeout) {
		return "bmemcached: " + addr + ": timeout"
	}
	msg := err.Error()
	if s, ok := strings.CutPrefix(msg, "memcached: dial "+addr+": "); ok {
		return "bmemcached: connect to " + addr + " failed: " + s
	}
	return "bmemcached: " + addr + ": " + strings.TrimPrefix(msg, "memcached: ")
}

// bmemSocketLog is the error-log line nginx writes for a failed cosocket
// operation (lua_socket_log_errors), which the OpenResty library's
// connections would have produced before the error is thrown; "" when
// nginx logs nothing (a close by the peer).
func bmemSocketLog(err error, connecting bool, addr string) (int, string) {
	var errno syscall.Errno
	var ne net.Error
	switch {
	case errors.Is(err, memcached.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()):
		if connecting {
			return LogErr, "lua tcp socket connect timed out, when connecting to " + addr
		}
		return LogErr, "lua tcp socket read timed out"
	case errors.As(err, &errno):
		text := errno.Error()
		detail := " (" + strconv.Itoa(int(errno)) + ": " + strings.ToUpper(text[:1]) + text[1:] + ")"
		if !connecting {
			return LogErr, "recv() failed" + detail
		}
		if errno == syscall.ECONNREFUSED {
			return LogErr, "connect() failed" + detail
		}
		return LogCrit, "connect() to " + addr + " failed" + detail
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, memcached.ErrClosed) || errors.Is(err, memcached.ErrProtocol):
		return 0, ""
	}
	var se *memcached.StatusError
	if errors.As(err, &se) {
		return 0, "" // a SASL refusal is an answer, not a socket error
	}
	return LogErr, "lua tcp socket error: " + err.Error()
}

// logSocketError writes bmemSocketLog's line when lua_socket_log_errors is on.
func (m *bmem) logSocketError(err error, connecting bool, addr string) {
	if !m.vm.req.SocketDefaults().LogErrors {
		return
	}
	if level, line := bmemSocketLog(err, connecting, addr); line != "" {
		m.vm.Log(level, line)
	}
}
