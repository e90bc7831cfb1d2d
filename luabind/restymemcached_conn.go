package luabind

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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

// Connecting, TLS and the cosocket error vocabulary of resty.memcached.

// rmcPoolOpts are the dial options of every resty.memcached pool. The connect
// timeout here only bounds a dial that races another request for the last
// idle connection; otherwise connect() passes its own deadline.
var (
	rmcTCPOpts  = memcached.Options{Network: "tcp", Protocol: memcached.Text, ConnectTimeout: DefaultSocketSettings.ConnectTimeout}
	rmcUnixOpts = memcached.Options{Network: "unix", Protocol: memcached.Text, ConnectTimeout: DefaultSocketSettings.ConnectTimeout}
)

// connect: ok, err = memc:connect(host, port, opts?) or
// memc:connect("unix:/path", opts?). The object gets a lease on the pool's
// shared transport, which costs no syscall while the transport or the pool
// has a live connection, and otherwise dials one — so that a refused or
// timed-out connect is still reported here — which waits in the pool for
// the first command to take it: the transport's, or one that needs a
// connection of its own (the object's socket, as it were). Only a pooled
// TLS connection, which the shared transport does not carry, is handed out
// as a connection of the object's own.
func (m *rmcModule) connect(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	host, ok := L.Get(2).(lua.LString)
	if !ok {
		L.ArgError(1, "string expected, got "+L.Get(2).Type().String())
	}
	// A connected cosocket is closed before it connects again.
	o.drop()
	o.isTLS = false
	var (
		opts    *lua.LTable
		addr    string
		port    int
		dialOps = &rmcTCPOpts
	)
	if strings.HasPrefix(string(host), "unix:") {
		opts, _ = L.Get(3).(*lua.LTable)
		addr = string(host[5:])
		dialOps = &rmcUnixOpts
		o.addrText = string(host)
	} else {
		pv := L.Get(3)
		if pv == lua.LNil || pv.Type() == lua.LTTable {
			return ret(L, 1, "missing the port number")
		}
		p, ok := pv.(lua.LNumber)
		if !ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(lua.LVAsString(pv)), 64)
			if err != nil {
				L.ArgError(2, "number expected, got "+pv.Type().String())
			}
			p = lua.LNumber(n)
		}
		port = int(p)
		if port < 0 || port > 65535 {
			return ret(L, 1, "bad port number: "+strconv.Itoa(port))
		}
		opts, _ = L.Get(4).(*lua.LTable)
	}
	pool := m.pool(o, string(host), port, addr, dialOps, opts)
	o.pool = pool
	if addr == "" {
		o.addrText = pool.Addr()
	}

	parent := m.vm.L.Context()
	if parent == nil {
		parent = context.Background()
	}
	var (
		c     *memcached.Conn
		lease *memcached.Lease
		err   error
	)
	if tp := m.tlsPools[o.poolKey]; tp != nil && tp.Idle() > 0 {
		c, err = tp.Get(parent)
		if err == nil {
			o.pool, o.isTLS = tp, true
		}
	} else {
		timeout := o.connectTimeout
		if timeout <= 0 {
			timeout = o.socketDefaults().ConnectTimeout
		}
		o.mux = pool.Mux()
		lease, err = o.mux.Lease(parent, timeout)
	}
	if err != nil {
		msg, logLine := rmcSocketError(err, rmcPhaseConnect, o.addrText)
		if logLine != "" && o.socketDefaults().LogErrors {
			m.vm.Log(rmcLogLevel(err, rmcPhaseConnect), logLine)
		}
		return ret(L, 1, msg)
	}
	o.conn, o.lease = c, lease
	o.readShut = false
	o.applyTimeouts()
	o.arm()
	return retOK(L)
}

// pool finds the pool for a connect() call and sets o.poolKey: the
// pool named opts.pool, else "host:port" or "unix:/path" as OpenResty names
// them.
func (m *rmcModule) pool(o *rmc, host string, port int, unixPath string, dialOps *memcached.Options, opts *lua.LTable) *memcached.Pool {
	name := ""
	if opts != nil {
		if v, ok := opts.RawGetString("pool").(lua.LString); ok {
			name = string(v)
		}
	}
	if name == "" && unixPath == "" && m.lastKey.pool != nil && m.lastKey.host == host && m.lastKey.port == port {
		o.poolKey = m.lastKey.key
		return m.lastKey.pool
	}
	addr := unixPath
	if addr == "" {
		addr = net.JoinHostPort(host, strconv.Itoa(port))
		if name == "" {
			name = host + ":" + strconv.Itoa(port)
		}
	} else if name == "" {
		name = "unix:" + unixPath
	}
	o.poolKey = rmcPoolPrefix + name
	p := m.vm.MemcachedPools().Pool(o.poolKey, addr, dialOps)
	if unixPath == "" && opts == nil {
		m.lastKey.host, m.lastKey.port, m.lastKey.key, m.lastKey.pool = host, port, o.poolKey, p
	}
	return p
}

// rmcSession is what sslhandshake returns for a session (OpenResty's
// ssl_session cdata). Go's client session cache resumes sessions by itself,
// so passing one back is accepted and changes nothing.
type rmcSession struct{}

// sslhandshake: session, err = memc:sslhandshake(reused_session?,
// server_name?, ssl_verify?, send_status_req?)
//
// memcached.Conn cannot be upgraded in place, so a plain connection is
// replaced by one dialed with TLS from a pool of its own (keyed by the plain
// pool, the server name and verification); later connect() calls hand out
// those pooled TLS connections first, and sslhandshake on one that is
// already TLS returns at once, as OpenResty does for a reused SSL
// connection.
func (m *rmcModule) sslhandshake(L *lua.LState) int {
	o := m.obj(L)
	if o == nil {
		return ret(L, 1, "not initialized")
	}
	if !o.connected() {
		return ret(L, 1, "closed")
	}
	reuse := L.Get(2)
	serverName := ""
	if v, ok := L.Get(3).(lua.LString); ok {
		serverName = string(v)
	} else if v := L.Get(3); v != lua.LNil {
		L.ArgError(2, "string expected, got "+v.Type().String())
	}
	verify := lua.LVAsBool(L.Get(4))
	pushSession := func() int {
		if reuse == lua.LFalse {
			L.Push(lua.LTrue)
			return 1
		}
		ud := L.NewUserData()
		ud.Value = rmcSession{}
		L.Push(ud)
		return 1
	}
	if o.isTLS {
		return pushSession()
	}
	key := o.poolKey + "\x00tls\x00" + serverName + "\x00" + strconv.FormatBool(verify)
	opts := rmcTCPOpts
	if strings.HasPrefix(o.addrText, "unix:") {
		opts = rmcUnixOpts
	}
	opts.TLS = rmcTLSConfig(serverName, verify)
	tp := m.vm.MemcachedPools().Pool(key, o.pool.Addr(), &opts)
	o.drop()
	parent := m.vm.L.Context()
	if parent == nil {
		parent = context.Background()
	}
	timeout := o.connectTimeout
	if timeout <= 0 {
		timeout = o.socketDefaults().ConnectTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	c, err := tp.Get(ctx)
	cancel()
	if err != nil {
		msg, logLine := rmcTLSError(err, serverName)
		if msg == "" {
			msg, logLine = rmcSocketError(err, rmcPhaseConnect, o.addrText)
		}
		if logLine != "" && o.socketDefaults().LogErrors {
			m.vm.Log(LogErr, logLine)
		}
		return ret(L, 1, msg)
	}
	if m.tlsPools == nil {
		m.tlsPools = make(map[string]*memcached.Pool)
	}
	m.tlsPools[o.poolKey] = tp
	o.conn, o.pool, o.isTLS = c, tp, true
	o.applyTimeouts()
	o.arm()
	return pushSession()
}

// rmcVerifyError is a failed certificate check, worded as
// X509_verify_cert_error_string with its code, as OpenResty returns it.
type rmcVerifyError struct {
	code int
	msg  string
}

func (e *rmcVerifyError) Error() string { return strconv.Itoa(e.code) + ": " + e.msg }

var errRmcHostMismatch = errors.New("certificate host mismatch")

// rmcTLSConfig verifies by hand when asked, as OpenResty does after the
// handshake: the chain against the system roots (SSL_CERT_FILE /
// SSL_CERT_DIR pick other ones), then the name when one was given.
func rmcTLSConfig(serverName string, verify bool) *tls.Config {
	cfg := &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection when ssl_verify is true
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	if verify {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return &rmcVerifyError{50, "application verification failure"}
			}
			opts := x509.VerifyOptions{Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(opts); err != nil {
				return rmcX509Error(leaf, err)
			}
			if serverName != "" {
				if err := leaf.VerifyHostname(serverName); err != nil {
					return errRmcHostMismatch
				}
			}
			return nil
		}
	}
	return cfg
}

// rmcX509Error maps Go's verification failure onto OpenSSL's code and text.
func rmcX509Error(leaf *x509.Certificate, err error) error {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
			leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
			return &rmcVerifyError{18, "self-signed certificate"}
		}
		return &rmcVerifyError{20, "unable to get local issuer certificate"}
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		switch ci.Reason {
		case x509.Expired:
			if time.Now().Before(leaf.NotBefore) {
				return &rmcVerifyError{9, "certificate is not yet valid"}
			}
			return &rmcVerifyError{10, "certificate has expired"}
		case x509.IncompatibleUsage:
			return &rmcVerifyError{26, "unsuitable certificate purpose"}
		}
		return &rmcVerifyError{24, "invalid CA certificate"}
	}
	return &rmcVerifyError{1, "unspecified certificate verification error"}
}

// rmcTLSError returns sslhandshake's error string and log line for a TLS
// failure, or "" when err is not one.
func rmcTLSError(err error, serverName string) (msg, logLine string) {
	var ve *rmcVerifyError
	if errors.As(err, &ve) {
		return ve.Error(), "lua ssl certificate verify error: (" + ve.Error() + ")"
	}
	if errors.Is(err, errRmcHostMismatch) {
		return "certificate host mismatch", `lua ssl certificate does not match host "` + serverName + `"`
	}
	var re tls.RecordHeaderError
	var ae tls.AlertError
	if errors.As(err, &re) || errors.As(err, &ae) || strings.Contains(err.Error(), "tls:") {
		return "handshake failed", "SSL_do_handshake() failed (" + err.Error() + ")"
	}
	return "", ""
}

// rmcPhase is the socket operation that failed, for the log line.
type rmcPhase uint8

const (
	rmcPhaseConnect rmcPhase = iota
	rmcPhaseSend
	rmcPhaseRead
)

// rmcSocketError maps a Go socket error onto the cosocket's error string
// (lua-nginx-module's ngx_http_lua_socket_prepare_error_retvals) and the
// [error] line nginx writes for it ("" when it writes none, as for a peer
// that closed).
func rmcSocketError(err error, phase rmcPhase, addr string) (msg, logLine string) {
	var dnsErr *net.DNSError
	var errno syscall.Errno
	switch {
	case errors.Is(err, memcached.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) || rmcIsTimeout(err):
		switch phase {
		case rmcPhaseConnect:
			return "timeout", "lua tcp socket connect timed out, when connecting to " + addr
		case rmcPhaseSend:
			return "timeout", "lua tcp socket write timed out"
		}
		return "timeout", "lua tcp socket read timed out"
	case errors.As(err, &dnsErr):
		m := dnsErr.Name + " could not be resolved (3: Host not found)"
		if !dnsErr.IsNotFound {
			m = dnsErr.Name + " could not be resolved (2: Server failure)"
		}
		return m, m
	case errors.As(err, &errno):
		text := errno.Error()
		detail := " (" + strconv.Itoa(int(errno)) + ": " + strings.ToUpper(text[:1]) + text[1:] + ")"
		switch phase {
		case rmcPhaseConnect:
			// nginx logs a refused TCP connect when the event loop sees it;
			// connect(2) failing outright names the peer, at crit unless the
			// peer refused (ngx_event_connect_peer).
			if errno == syscall.ECONNREFUSED && !strings.HasPrefix(addr, "unix:") {
				return text, "connect() failed" + detail
			}
			return text, "connect() to " + addr + " failed" + detail
		case rmcPhaseSend:
			return text, "send() failed" + detail
		}
		return text, "recv() failed" + detail
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, memcached.ErrClosed) || errors.Is(err, memcached.ErrProtocol):
		return "closed", ""
	}
	return "error", "lua tcp socket error: " + err.Error()
}

// rmcLogLevel is the level nginx writes a socket failure at: crit for a
// connect(2) that failed for a reason other than the peer's refusal, error
// otherwise.
func rmcLogLevel(err error, phase rmcPhase) int {
	var errno syscall.Errno
	if phase == rmcPhaseConnect && errors.As(err, &errno) && errno != syscall.ECONNREFUSED &&
		!errors.Is(err, os.ErrDeadlineExceeded) {
		return LogCrit
	}
	return LogErr
}

func rmcIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
