package luabind

import (
	"net"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// ngx.socket.udp: setpeername, send, receive, settimeout, close.

// udpMaxDatagram is receive's default and largest size, as in
// lua-nginx-module.
const (
	udpDefaultSize = 8192
	udpMaxDatagram = 65536
)

type udpSock struct {
	m       *sockModule
	conn    net.Conn
	readTO  time.Duration // 0: lua_socket_read_timeout
	tracked bool
}

func (u *udpSock) close() {
	if u.conn != nil {
		u.conn.Close() //nolint:errcheck // nothing to do about it
		u.conn = nil
	}
	u.tracked = false
}

// newUDP: sock = ngx.socket.udp()
func (m *sockModule) newUDP(L *lua.LState) int {
	if n := L.GetTop(); n != 0 {
		sockRaise(L, "expecting zero arguments, but got %d", n)
	}
	m.checkContext(L)
	t := L.CreateTable(1, 0)
	ud := L.NewUserData()
	ud.Value = &udpSock{m: m}
	t.RawSetInt(1, ud)
	t.Metatable = m.udpMeta
	L.Push(t)
	return 1
}

func (m *sockModule) udpSelf(L *lua.LState, fname string) *udpSock {
	t, ok := L.Get(1).(*lua.LTable)
	if !ok {
		sockArgError(L, 1, "table expected, got "+typeName(L.Get(1)))
	}
	if ud, ok := t.RawGetInt(1).(*lua.LUserData); ok {
		if u, ok := ud.Value.(*udpSock); ok {
			return u
		}
	}
	u := &udpSock{m: m}
	ud := L.NewUserData()
	ud.Value = u
	t.RawSetInt(1, ud)
	return u
}

// udpSetPeerName: ok, err = sock:setpeername(host, port) or
// sock:setpeername("unix:/path")
func (m *sockModule) udpSetPeerName(L *lua.LState) int {
	n := L.GetTop()
	if n != 2 && n != 3 {
		sockRaise(L, "ngx.socket.udp setpeername: expecting 2 or 3 arguments (including the object), but seen %d", n)
	}
	m.checkContext(L)
	u := m.udpSelf(L, "setpeername")
	host := L.CheckString(2)
	u.close()
	network, addr := "udp", ""
	if strings.HasPrefix(host, "unix:") {
		network, addr = "unixgram", host[5:]
	} else {
		port := 0
		if n == 3 {
			port = int(lua.LVAsNumber(L.Get(3)))
		}
		if port < 0 || port > 65535 {
			return pushNilErr(L, "bad port number: "+strconv.Itoa(port))
		}
		addr = net.JoinHostPort(host, strconv.Itoa(port))
	}
	ctx, cancel := contextWithDeadline(m, m.settings().ConnectTimeout)
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	cancel()
	if err != nil {
		name := addr
		if network == "unixgram" {
			name = host
		}
		return pushNilErr(L, m.ioError(err, sockConnect, name, "udp"))
	}
	u.conn = c
	if !u.tracked {
		u.tracked = true
		m.openUDP = append(m.openUDP, u)
		m.hook()
	}
	L.Push(lua.LNumber(1))
	return 1
}

// udpSend: ok, err = sock:send(data)
func (m *sockModule) udpSend(L *lua.LState) int {
	if n := L.GetTop(); n != 2 {
		sockRaise(L, "expecting 2 arguments (including the object), but got %d", n)
	}
	u := m.udpSelf(L, "send")
	if u.conn == nil {
		m.logClosed("send")
		return pushNilErr(L, "closed")
	}
	b := m.appendData(L, L.Get(2))
	if _, err := u.conn.Write(b); err != nil {
		return pushNilErr(L, m.ioError(err, sockSend, "", "udp"))
	}
	L.Push(lua.LNumber(1))
	return 1
}

// udpReceive: data, err = sock:receive(size?)
func (m *sockModule) udpReceive(L *lua.LState) int {
	n := L.GetTop()
	if n != 1 && n != 2 {
		sockRaise(L, "expecting 1 or 2 arguments (including the object), but got %d", n)
	}
	u := m.udpSelf(L, "receive")
	if u.conn == nil {
		m.logClosed("receive")
		return pushNilErr(L, "closed")
	}
	size := udpDefaultSize
	if n == 2 {
		// a negative size wraps to a huge size_t in nginx: the largest
		size = int(lua.LVAsNumber(L.Get(2)))
		if size < 0 || size > udpMaxDatagram {
			size = udpMaxDatagram
		}
	}
	timeout := u.readTO
	if timeout <= 0 {
		timeout = m.settings().ReadTimeout
	}
	if cap(m.scratch) < size {
		m.scratch = make([]byte, 0, udpMaxDatagram)
	}
	buf := m.scratch[:size]
	u.conn.SetReadDeadline(m.deadline(timeout)) //nolint:errcheck // a closed conn fails the read
	k, err := u.conn.Read(buf)
	if err != nil {
		return pushNilErr(L, m.ioError(err, sockRecv, "", "udp"))
	}
	L.Push(lua.LString(buf[:k]))
	return 1
}

// udpSetTimeout: sock:settimeout(ms), the read timeout.
func (m *sockModule) udpSetTimeout(L *lua.LState) int {
	if n := L.GetTop(); n != 2 {
		sockRaise(L, "ngx.socket settimeout: expecting 2 arguments (including the object) but seen %d", n)
	}
	t := time.Duration(int64(lua.LVAsNumber(L.Get(2)))) * time.Millisecond
	if t < 0 {
		t = 0
	}
	m.udpSelf(L, "settimeout").readTO = t
	return 0
}

// udpClose: ok, err = sock:close()
func (m *sockModule) udpClose(L *lua.LState) int {
	u := m.udpSelf(L, "close")
	if u.conn == nil {
		return pushNilErr(L, "closed")
	}
	u.conn.Close() //nolint:errcheck // nothing to do about it
	u.conn = nil
	L.Push(lua.LNumber(1))
	return 1
}
