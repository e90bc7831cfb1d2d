package luabind

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// sockPeer is a TCP server the tests control: each accepted connection is
// given to handle in its own goroutine and closed when handle returns.
type sockPeer struct {
	ln       net.Listener
	accepted atomic.Int32
	closedMu sync.Mutex
	// eofs counts connections whose client side closed (a read saw EOF),
	// for peers that track it.
	eofs atomic.Int32
}

func (p *sockPeer) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func startPeer(t testing.TB, handle func(p *sockPeer, c net.Conn)) *sockPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &sockPeer{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(p, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// waitEOF reads until the client closes (counting it) or 5 s pass.
func waitEOF(p *sockPeer, c net.Conn) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err == nil {
		p.eofs.Add(1)
	}
}

// sendAndWait writes data, then waits for the client to close.
func sendAndWait(data string) func(*sockPeer, net.Conn) {
	return func(p *sockPeer, c net.Conn) {
		c.Write([]byte(data))
		waitEOF(p, c)
	}
}

// sendAndClose writes data and closes.
func sendAndClose(data string) func(*sockPeer, net.Conn) {
	return func(_ *sockPeer, c net.Conn) { c.Write([]byte(data)) }
}

// echoLines answers each line with "echo: <line>\r\n".
func echoLines(p *sockPeer, c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			p.eofs.Add(1)
			return
		}
		c.Write([]byte("echo: " + strings.TrimRight(line, "\r\n") + "\r\n"))
	}
}

type sockRun struct {
	body string
	log  *testLogger
	err  error
}

// runSock runs code as a content handler in a fresh VM with PORT defined,
// under socket settings set (nil: defaults), and returns the output.
func runSock(t testing.TB, port int, code string, set *SocketSettings, timeout time.Duration) sockRun {
	t.Helper()
	log := &testLogger{}
	vm, err := NewVM(&Options{Logger: log})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	ctx := &fasthttp.RequestCtx{}
	vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent, Socket: set})
	src := "local PORT = " + strconv.Itoa(port) + "\n" + code
	err = vm.Run(compile(t, "content_by_lua(nginx.conf:1)", src), timeout)
	vm.End()
	return sockRun{body: string(ctx.Response.Body()), log: log, err: err}
}

func (r sockRun) logged() string {
	var b strings.Builder
	for _, l := range r.log.lines {
		b.WriteString("[" + LevelNames[l.level] + "] " + l.msg + "\n")
	}
	return b.String()
}

// uniquePool names a pool no other test uses (the registry is process-wide).
func uniquePool(t testing.TB) string {
	return "test:" + t.Name() + ":" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// show is a Lua helper printing every result, nils included.
const show = `
local function show(...)
  local n = select("#", ...)
  local t = {}
  for i = 1, n do t[i] = tostring((select(i, ...))) end
  ngx.say(table.concat(t, " "))
end
`

func TestSocketReceivePatterns(t *testing.T) {
	tests := []struct {
		name, data string
		close      bool
		code, want string
	}{
		{"lines drop every CR", "line1\r\nli\rne2\n\nx", false,
			`show(s:receive()) show(s:receive("*l")) show(s:receive()) show(s:receive(1))`,
			"line1\nline2\n\nx\n"},
		{"sizes, numeric strings and zero", "ABCDEFGHIJ", false,
			`show(s:receive(4)) show(s:receive("3")) show(s:receive(0)) show(s:receive(3.9))`,
			"ABCD\nEFG\n\nHIJ\n"},
		{"*a reads to close without error, and again reads nothing", "all\r\nthe rest", true,
			`show(s:receive("*a")) show(s:receive("*a")) show(s:receive()) show(s:receive()) show(s:send("x"))`,
			"all\r\nthe rest\n\nnil closed \nnil closed\n1\n"},
		{"size larger than the buffer", strings.Repeat("z", 10000) + "!", false,
			`local d = s:receive(10000) show(#d, d:sub(1, 3)) show(s:receive(1))`,
			"10000 zzz\n!\n"},
		{"long line grows the buffer", strings.Repeat("y", 9000) + "\r\nnext\n", false,
			`local d = s:receive() show(#d) show(s:receive())`,
			"9000\nnext\n"},
		{"partial size on close", "abc", true,
			`show(s:receive(10)) show(s:receive(1))`,
			"nil closed abc\nnil closed\n"},
		{"partial line on close drops CR", "a\rb", true,
			`show(s:receive())`,
			"nil closed ab\n"},
		{"receiveany returns what is there", "0123456789", false,
			`show(s:receiveany(4)) show(s:receiveany(100))`,
			"0123\n456789\n"},
		{"receiveany on close", "", true,
			`show(s:receiveany(4)) show(s:receiveany(4))`,
			"nil closed \nnil closed\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := sendAndWait(tc.data)
			if tc.close {
				h = sendAndClose(tc.data)
			}
			p := startPeer(t, h)
			r := runSock(t, p.port(), show+`
				local s = ngx.socket.tcp()
				s:settimeout(2000)
				assert(s:connect("127.0.0.1", PORT))
			`+tc.code, nil, 10*time.Second)
			require.NoError(t, r.err)
			assert.Equal(t, tc.want, r.body)
		})
	}
}

func TestSocketReceiveUntil(t *testing.T) {
	tests := []struct {
		name, data, code, want string
	}{
		{"the document's sized example", "hello, world! -agentzh\r\n--abcedhb blah blah", `
			local reader = s:receiveuntil("\r\n--abcedhb")
			while true do
				local data, err, partial = reader(4)
				if not data then
					if err then ngx.say("failed to read the data stream: ", err, " ", partial) break end
					ngx.say("read done") break
				end
				ngx.say("read chunk: [", data, "]")
			end
			show(s:receive(5))`,
			"read chunk: [hell]\nread chunk: [o, w]\nread chunk: [orld]\nread chunk: [! -a]\nread chunk: [gent]\nread chunk: [zh]\nread done\n blah\n"},
		{"unsized reads up to each pattern", "a--b--c----d", `
			local r = s:receiveuntil("--")
			show(r()) show(r()) show(r()) show(r()) show(s:receive(1))`,
			"a\nb\nc\n\nd\n"},
		{"inclusive keeps the pattern", "key: value\r\n\r\nbody", `
			local r = s:receiveuntil("\r\n\r\n", { inclusive = true })
			show(r()) show(s:receive(4))`,
			"key: value\r\n\r\n\nbody\n"},
		{"overlapping prefixes are released correctly", "aaab-aab-ab", `
			local r = s:receiveuntil("aab")
			show(r()) show(r()) show(s:receive(3))`,
			"a\n-\n-ab\n"},
		{"a failed partial match is data", "xx<<<y>>>zz>>>", `
			local r = s:receiveuntil(">>>")
			show(r()) show(r())`,
			"xx<<<y\nzz\n"},
		{"one-byte pattern with size", "abcdef\nrest", `
			local r = s:receiveuntil("\n")
			show(r(4)) show(r(4)) show(r(4)) show(r(4))`,
			"abcd\nef\nnil nil nil\nrest\n"},
		{"sized read ending right before the pattern", "abcd--x--", `
			local r = s:receiveuntil("--")
			show(r(4)) show(r(4)) show(r(4)) show(r(4)) show(r(4))`,
			"abcd\n\nnil nil nil\nx\nnil nil nil\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startPeer(t, sendAndWait(tc.data))
			r := runSock(t, p.port(), show+`
				local s = ngx.socket.tcp()
				s:settimeout(500)
				assert(s:connect("127.0.0.1", PORT))
			`+tc.code, nil, 10*time.Second)
			require.NoError(t, r.err)
			assert.Equal(t, tc.want, r.body)
		})
	}
}

func TestSocketReceiveUntilErrors(t *testing.T) {
	p := startPeer(t, sendAndClose("abc--de-"))
	r := runSock(t, p.port(), show+`
		local s = ngx.socket.tcp()
		s:settimeout(1000)
		assert(s:connect("127.0.0.1", PORT))
		show(s:receiveuntil(""))
		show(pcall(s.receiveuntil, s, "x", { inclusive = 1 }))
		local r = s:receiveuntil("--")
		show(r())
		-- the peer closed inside a possible pattern: the held-back "-" is not data yet
		show(r())
		show(r())
	`, nil, 10*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "nil pattern is empty\nfalse bad \"inclusive\" option value type: number\nabc\nnil closed de\nnil closed\n", r.body)
}

func TestSocketTimeouts(t *testing.T) {
	silent := startPeer(t, waitEOF)
	t.Run("read timeout keeps the connection and returns the partial data", func(t *testing.T) {
		p := startPeer(t, func(p *sockPeer, c net.Conn) {
			c.Write([]byte("part"))
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("ial\n"))
			waitEOF(p, c)
		})
		start := time.Now()
		r := runSock(t, p.port(), show+`
			local s = ngx.socket.tcp()
			s:settimeout(100)
			assert(s:connect("127.0.0.1", PORT))
			show(s:receive())
			show(s:send("go\n"))
			s:settimeouts(1000, 1000, 1000)
			show(s:receive())
		`, nil, 10*time.Second)
		require.NoError(t, r.err)
		assert.Equal(t, "nil timeout part\n3\nial\n", r.body)
		assert.Equal(t, "[error] lua tcp socket read timed out\n", r.logged())
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("location default read timeout", func(t *testing.T) {
		set := DefaultSocketSettings
		set.ReadTimeout = 50 * time.Millisecond
		r := runSock(t, silent.port(), show+`
			local s = ngx.socket.tcp()
			assert(s:connect("127.0.0.1", PORT))
			show(s:receive(1))
			local it = s:receiveuntil("x")
			show(it())
			show(s:receiveany(3))
		`, &set, 10*time.Second)
		require.NoError(t, r.err)
		assert.Equal(t, "nil timeout \nnil timeout \nnil timeout \n", r.body)
	})
	t.Run("lua_socket_log_errors off", func(t *testing.T) {
		set := DefaultSocketSettings
		set.LogErrors = false
		r := runSock(t, silent.port(), show+`
			local s = ngx.socket.tcp()
			s:settimeout(30)
			assert(s:connect("127.0.0.1", PORT))
			show(s:receive(1))
			s:close()
			show(s:receive(1))
			show(s:connect("127.0.0.1", 1))
			show(s:connect("unix:/nonexistent/x.sock"))
		`, &set, 10*time.Second)
		require.NoError(t, r.err)
		assert.Equal(t, "nil timeout \nnil closed\nnil connection refused\nnil no such file or directory\n", r.body)
		// nginx's core still logs a connect(2) that fails at once.
		assert.Equal(t, "[crit] connect() to unix:/nonexistent/x.sock failed (2: No such file or directory)\n", r.logged())
	})
	t.Run("request deadline stops a hung receive", func(t *testing.T) {
		start := time.Now()
		r := runSock(t, silent.port(), `
			local s = ngx.socket.tcp()
			assert(s:connect("127.0.0.1", PORT))
			s:receive()
			ngx.say("not reached")
		`, nil, 200*time.Millisecond)
		assert.ErrorIs(t, r.err, ErrTimeout)
		assert.Empty(t, r.body)
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("bad timeout values", func(t *testing.T) {
		r := runSock(t, silent.port(), show+`
			local s = ngx.socket.tcp()
			show(pcall(s.settimeout, s, -1))
			show(pcall(s.settimeout, s))
			show(pcall(s.settimeouts, s, 1, 2))
		`, nil, 10*time.Second)
		require.NoError(t, r.err)
		assert.Equal(t, "false bad timeout value\n"+
			"false ngx.socket settimeout: expecting 2 arguments (including the object) but seen 1\n"+
			"false ngx.socket settimeout: expecting 4 arguments (including the object) but seen 3\n", r.body)
	})
}

// hangingListener returns the port of a listener whose accept queue is
// full, so a new connect hangs in SYN_SENT until it times out.
func hangingListener(t *testing.T) int {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux's listen backlog semantics")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	port := sa.(*syscall.SockaddrInet4).Port
	// fill the queue (backlog 0 admits one) with connections never accepted
	for i := 0; i < 2; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return port
}

func TestSocketConnectTimeout(t *testing.T) {
	port := hangingListener(t)
	r := runSock(t, port, show+`
		local s = ngx.socket.tcp()
		s:settimeout(100)
		show(s:connect("127.0.0.1", PORT))
	`, nil, 10*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "nil timeout\n", r.body)
	assert.Equal(t, "[error] lua tcp socket connect timed out, when connecting to 127.0.0.1:"+strconv.Itoa(port)+"\n", r.logged())
}

func TestSocketPeerClosesMidResponse(t *testing.T) {
	p := startPeer(t, func(_ *sockPeer, c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("VALUE k 0 10\r\nabc"))
	})
	r := runSock(t, p.port(), show+`
		local s = ngx.socket.tcp()
		s:settimeout(1000)
		assert(s:connect("127.0.0.1", PORT))
		show(s:send({"get", " ", "k", "\r\n"}))
		show(s:receive())
		show(s:receive(12))
		show(s:receive())
		show(s:send("x"))
		show(s:setkeepalive())
		show(s:close())
		show(s:getreusedtimes())
	`, nil, 10*time.Second)
	require.NoError(t, r.err)
	// As in nginx, a failed read ends only the reading half: send and close
	// still work, setkeepalive refuses.
	assert.Equal(t, "7\nVALUE k 0 10\nnil closed abc\nnil closed\n1\nnil closed\n1\nnil closed\n", r.body)
	assert.Equal(t, "[error] attempt to receive data on a closed socket: u:0000000000000000, c:0000000000000000\n", r.logged())
}

func TestSocketKeepaliveReuse(t *testing.T) {
	p := startPeer(t, echoLines)
	pool := uniquePool(t)
	vmLog := &testLogger{}
	vm, err := NewVM(&Options{Logger: vmLog})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	proto := compile(t, "x", show+`
		local s = ngx.socket.tcp()
		s:settimeout(1000)
		show(s:connect("127.0.0.1", `+strconv.Itoa(p.port())+`, { pool = "`+pool+`" }))
		show(s:getreusedtimes())
		show(s:send("hi\n"))
		show(s:receive())
		show(s:setkeepalive())
		show(s:send("x"))
	`)
	var bodies []string
	for i := 0; i < 3; i++ {
		ctx := &fasthttp.RequestCtx{}
		vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent})
		require.NoError(t, vm.Run(proto, 5*time.Second))
		vm.End()
		bodies = append(bodies, string(ctx.Response.Body()))
	}
	for i, b := range bodies {
		assert.Equal(t, "1\n"+strconv.Itoa(i)+"\n3\necho: hi\n1\nnil closed\n", b)
	}
	assert.Equal(t, int32(1), p.accepted.Load(), "one connection, reused")
	assert.Equal(t, 1, cosocketPools.Idle(pool))
}

func TestSocketKeepaliveRefusals(t *testing.T) {
	p := startPeer(t, sendAndWait("unread\r\n"))
	r := runSock(t, p.port(), show+`
		local s = ngx.socket.tcp()
		s:settimeout(1000)
		assert(s:connect("127.0.0.1", PORT, { pool = "`+uniquePool(t)+`" }))
		show(s:receive(2))
		show(s:setkeepalive())
		show(s:receive())
		show(s:close())
		show(pcall(s.setkeepalive, s, 1, 2, 3))
	`, nil, 10*time.Second)
	require.NoError(t, r.err)
	// lua-nginx-module 0.10.23 leaves the socket usable after refusing.
	assert.Equal(t, "un\nnil unread data in buffer\nread\n1\nfalse expecting 1 to 3 arguments (including the object), but got 4\n", r.body)
	require.Eventually(t, func() bool { return p.eofs.Load() == 1 }, 5*time.Second, 10*time.Millisecond,
		"the connection with unread data is not pooled")
}

func TestSocketPooledConnectionClosedByPeerIsNotReused(t *testing.T) {
	var n atomic.Int32
	p := startPeer(t, func(p *sockPeer, c net.Conn) {
		if n.Add(1) == 1 {
			// The first connection is closed by the peer once it is idle.
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("bye\n"))
			return
		}
		echoLines(p, c)
	})
	pool := uniquePool(t)
	code := show + `
		local s = ngx.socket.tcp()
		s:settimeout(1000)
		assert(s:connect("127.0.0.1", PORT, { pool = "` + pool + `" }))
		show(s:getreusedtimes())
		s:send("q\n")
		show(s:receive())
		show(s:setkeepalive())
	`
	r := runSock(t, p.port(), code, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "0\nbye\n1\n", r.body)
	time.Sleep(50 * time.Millisecond) // let the peer's FIN arrive
	r = runSock(t, p.port(), code, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "0\necho: q\n1\n", r.body)
	assert.Equal(t, int32(2), p.accepted.Load())
}

func TestSocketLeftOpenIsClosedAtRequestEnd(t *testing.T) {
	p := startPeer(t, waitEOF)
	r := runSock(t, p.port(), `
		local a = ngx.socket.tcp()
		assert(a:connect("127.0.0.1", PORT))
		local b = assert(ngx.socket.connect("127.0.0.1", PORT))
		local c = ngx.socket.tcp()
		assert(c:connect("127.0.0.1", PORT))
		assert(c:connect("127.0.0.1", PORT)) -- connecting again closes the first
		ngx.say("left open")
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "left open\n", r.body)
	require.Eventually(t, func() bool { return p.eofs.Load() == 4 }, 5*time.Second, 10*time.Millisecond)
}

func TestSocketPoolBound(t *testing.T) {
	p := startPeer(t, waitEOF)
	pool := uniquePool(t)
	r := runSock(t, p.port(), show+`
		local socks = {}
		for i = 1, 4 do
			socks[i] = ngx.socket.tcp()
			assert(socks[i]:connect("127.0.0.1", PORT, { pool = "`+pool+`", pool_size = 2 }))
		end
		for i = 1, 4 do show(socks[i]:setkeepalive(0)) end
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "1\n1\n1\n1\n", r.body)
	assert.Equal(t, 2, cosocketPools.Idle(pool))
	require.Eventually(t, func() bool { return p.eofs.Load() == 2 }, 5*time.Second, 10*time.Millisecond,
		"the least recently used idle connections are closed")
}

func TestSocketPoolIdleExpiry(t *testing.T) {
	p := startPeer(t, waitEOF)
	pool := uniquePool(t)
	r := runSock(t, p.port(), `
		local s = ngx.socket.tcp()
		assert(s:connect("127.0.0.1", PORT, { pool = "`+pool+`" }))
		assert(s:setkeepalive(50))
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, 1, cosocketPools.Idle(pool))
	require.Eventually(t, func() bool { return p.eofs.Load() == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 0, cosocketPools.Idle(pool))
}

func TestSocketBacklog(t *testing.T) {
	p := startPeer(t, waitEOF)
	pool := uniquePool(t)
	r := runSock(t, p.port(), show+`
		local opts = { pool = "`+pool+`", pool_size = 1, backlog = 0 }
		local a = ngx.socket.tcp()
		show(a:connect("127.0.0.1", PORT, opts))
		local b = ngx.socket.tcp()
		b:settimeout(100)
		show(b:connect("127.0.0.1", PORT, opts))
		opts.backlog = 1
		show(b:connect("127.0.0.1", PORT, opts))
		a:close()
		show(b:connect("127.0.0.1", PORT, opts))
		show(pcall(b.connect, b, "127.0.0.1", PORT, { pool_size = 0 }))
		show(pcall(b.connect, b, "127.0.0.1", PORT, { backlog = -1 }))
		show(pcall(b.connect, b, "127.0.0.1", PORT, { pool = {} }))
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "1\nnil too many waiting connect operations\nnil timeout\n1\n"+
		"false bad argument #4 to '?' (bad \"pool_size\" option value: 0)\n"+
		"false bad argument #4 to '?' (bad \"backlog\" option value: -1)\n"+
		"false bad \"pool\" option type: table\n", r.body)
	assert.Contains(t, r.logged(), "[error] lua tcp socket queued connect timed out, when trying to connect to 127.0.0.1:"+strconv.Itoa(p.port()))
}

func TestSocketConnectErrors(t *testing.T) {
	dir := t.TempDir()
	r := runSock(t, 0, show+`
		local s = ngx.socket.tcp()
		s:settimeout(2000)
		show(s:connect("127.0.0.1", 1))
		show(s:connect("unix:`+dir+`/nosuch.sock"))
		show(s:connect("127.0.0.1", 70000))
		show(s:connect("127.0.0.1", "x"))
		show(s:connect("localhost"))
		show(pcall(s.connect, s))
		show(ngx.socket.connect("127.0.0.1", 1))
		show(s:connect("no-such-host.invalid", 80))
	`, nil, 10*time.Second)
	require.NoError(t, r.err)
	lines := strings.Split(r.body, "\n")
	require.Len(t, lines, 9)
	assert.Equal(t, []string{
		"nil connection refused",
		"nil no such file or directory",
		"nil bad port number: 70000",
		"nil missing the port number",
		"nil missing the port number",
		"false ngx.socket connect: expecting 2, 3, or 4 arguments (including the object), but seen 1",
		"nil connection refused",
	}, lines[:7])
	assert.Contains(t, lines[7], "no-such-host.invalid could not be resolved")
	assert.Equal(t, "[error] connect() failed (111: Connection refused)\n"+
		"[crit] connect() to unix:"+dir+"/nosuch.sock failed (2: No such file or directory)\n"+
		"[error] connect() failed (111: Connection refused)\n", strings.SplitAfterN(r.logged(), "\n", 4)[0]+
		strings.SplitAfterN(r.logged(), "\n", 4)[1]+strings.SplitAfterN(r.logged(), "\n", 4)[2])
}

func TestSocketUnixDomain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				echoLines(&sockPeer{}, c)
			}()
		}
	}()
	r := runSock(t, 0, show+`
		local s = ngx.socket.tcp()
		s:settimeout(1000)
		show(s:connect("unix:`+path+`"))
		show(s:send("over unix\n"))
		show(s:receive())
		show(s:setkeepalive())
		show(s:connect("unix:`+path+`"))
		show(s:getreusedtimes())
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "1\n10\necho: over unix\n1\n1\n1\n", r.body)
}

func TestSocketSendForms(t *testing.T) {
	got := make(chan string, 1)
	p := startPeer(t, func(_ *sockPeer, c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	r := runSock(t, p.port(), show+`
		local s = ngx.socket.tcp()
		assert(s:connect("127.0.0.1", PORT))
		show(s:send("a"))
		show(s:send(12.5))
		show(s:send({"b", {"c", 3}}))
		show(s:send(""))
		show(s:send({}))
		show(s:send(true))
		show(s:send(nil))
		show(pcall(s.send, s, {x = 1}))
		show(pcall(s.send, s, print))
		show(pcall(s.send, s))
		show(pcall(s.send, s, {1, true}))
		show(pcall(s.send, s, ngx.null))
		show(pcall(function() s:send({ngx.null}) end))
		show(s:setoption("tcp-nodelay", true))
		show(s:setoption("keepalive", true))
		show(s:setoption("reuseaddr", 1))
		show(s:setoption("sndbuf", 8192))
		show(s:setoption("rcvbuf", 8192))
		show(s:setoption("bogus", 1))
		show(pcall(s.setoption, s, "keepalive"))
		s:close()
		show(s:setoption("keepalive", true))
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "1\n4\n3\n0\n0\n4\n3\n"+
		"false bad argument #2 to '?' (non-array table found)\n"+
		"false bad argument #2 to '?' (string, number, boolean, nil, or array table expected, got function)\n"+
		"false expecting 2 arguments (including the object), but got 1\n"+
		"false bad argument #2 to '?' (bad data type boolean found)\n"+
		"false bad argument #2 to '?' (string, number, boolean, nil, or array table expected, got userdata)\n"+
		"false content_by_lua(nginx.conf:1):24: bad argument #1 to 'send' (bad data type userdata found)\n"+
		"true\ntrue\ntrue\ntrue\ntrue\nnil unsupported option bogus\n"+
		"true nil missing the \"value\" argument\nnil closed\n", r.body)
	select {
	case data := <-got:
		assert.Equal(t, "a12.5bc3truenil", data)
	case <-time.After(5 * time.Second):
		t.Fatal("peer got nothing")
	}
}

func TestSocketOutsideRequestAndPhases(t *testing.T) {
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	err = vm.Call(vm.L.NewFunctionFromProto(compile(t, "init", `ngx.socket.tcp()`)), time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no request found")
	ctx := &fasthttp.RequestCtx{}
	vm.Bind(&Request{Ctx: ctx, Phase: PhaseLog})
	err = vm.Run(compile(t, "log", `ngx.socket.tcp()`), time.Second)
	vm.End()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "API disabled in the context of log_by_lua*")
}

func TestSocketUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "silence" {
				continue
			}
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), addr)
		}
	}()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	r := runSock(t, port, show+`
		local u = ngx.socket.udp()
		show(u:send("early"))
		show(u:receive())
		show(u:close())
		show(u:setpeername("127.0.0.1", PORT))
		u:settimeout(1000)
		show(u:send({"da", "ta"}))
		show(u:receive())
		show(u:send("0123456789"))
		show(u:receive(8))
		u:settimeout(50)
		show(u:send("silence"))
		show(u:receive())
		show(u:close())
		show(u:close())
		local d = ngx.socket.udp()
		d:settimeout(1000)
		show(d:setpeername("127.0.0.1", 1))
		show(d:send("x"))
		show(d:receive())
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "nil closed\nnil closed\nnil closed\n1\n1\necho:data\n1\necho:012\n1\nnil timeout\n1\nnil closed\n1\n1\nnil connection refused\n", r.body)
	assert.Equal(t, "[error] attempt to send data on a closed socket: u:0000000000000000, c:0000000000000000\n"+
		"[error] attempt to receive data on a closed socket: u:0000000000000000, c:0000000000000000\n"+
		"[error] lua udp socket read timed out\n"+
		"[error] recv() failed (111: Connection refused)\n", r.logged())
}

func TestSocketArgumentErrors(t *testing.T) {
	p := startPeer(t, sendAndWait("data\n"))
	r := runSock(t, p.port(), show+`
		local s = ngx.socket.tcp()
		show(pcall(ngx.socket.tcp, 1))
		show(pcall(s.receive, s, "*x"))
		assert(s:connect("127.0.0.1", PORT))
		show(pcall(s.receive, s, "*x"))
		show(pcall(s.receive, s, -1))
		show(pcall(s.receive, s, {}))
		show(pcall(s.receive, s, 1, 2))
		show(pcall(s.receiveany, s, 0))
		show(pcall(s.receiveany, s, "x"))
		show(pcall(s.receiveuntil, s))
		show(pcall(s.connect, "127.0.0.1", PORT))
		show(pcall(function() s:receive({}) end))
		show(pcall(function() s.receive(nil) end))
		show(s:receive())
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "false expecting zero arguments, but got 1\n"+
		"true nil closed\n"+
		"false bad argument #2 to '?' (bad pattern argument)\n"+
		"false bad argument #2 to '?' (bad pattern argument)\n"+
		"false bad argument #2 to '?' (bad pattern argument)\n"+
		"false expecting 1 or 2 arguments (including the object), but got 3\n"+
		"false bad argument #2 to '?' (bad max argument)\n"+
		"false bad argument #2 to '?' (bad max argument)\n"+
		"false expecting 2 or 3 arguments (including the object), but got 1\n"+
		"false bad argument #1 to '?' (table expected, got string)\n"+
		"false content_by_lua(nginx.conf:1):22: bad argument #1 to 'receive' (bad pattern argument)\n"+
		"false content_by_lua(nginx.conf:1):23: bad argument #1 to 'receive' (table expected, got nil)\n"+
		"data\n", r.body)
}

// BenchmarkSocketSynopsis is the synopsis flow of a pure-Lua client: connect
// (from the pool), send a command, read the reply, setkeepalive.
func BenchmarkSocketSynopsis(b *testing.B) {
	p := startPeer(b, func(_ *sockPeer, c net.Conn) {
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadSlice('\n'); err != nil {
				return
			}
			c.Write([]byte("VALUE dog 0 2\r\n32\r\nEND\r\n"))
		}
	})
	vm, err := NewVM(&Options{})
	require.NoError(b, err)
	defer vm.Close()
	proto := compile(b, "x", `
		local sock = ngx.socket.tcp()
		sock:settimeout(1000)
		local ok, err = sock:connect("127.0.0.1", `+strconv.Itoa(p.port())+`)
		if not ok then error(err) end
		sock:send({"get ", "dog", "\r\n"})
		local line = sock:receive()
		local data = sock:receive(2)
		sock:receive(2)
		local last = sock:receive()
		if data ~= "32" or last ~= "END" then error("bad reply") end
		sock:setkeepalive(10000, 100)
	`)
	ctx := &fasthttp.RequestCtx{}
	r := &Request{Ctx: ctx, Phase: PhaseContent}
	b.ReportAllocs()
	for b.Loop() {
		vm.Bind(r)
		if err := vm.Run(proto, time.Second); err != nil {
			b.Fatal(err)
		}
		vm.End()
	}
}

func TestSocketPoolSharedByConcurrentVMs(t *testing.T) {
	p := startPeer(t, echoLines)
	pool := uniquePool(t)
	proto := compile(t, "x", `
		local s = ngx.socket.tcp()
		s:settimeout(2000)
		assert(s:connect("127.0.0.1", `+strconv.Itoa(p.port())+`, { pool = "`+pool+`", pool_size = 2, backlog = 8 }))
		assert(s:send("ping\n"))
		assert(s:receive() == "echo: ping")
		assert(s:setkeepalive(0))
	`)
	const vms, requests = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, vms)
	for i := 0; i < vms; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm, err := NewVM(&Options{})
			if err != nil {
				errs <- err
				return
			}
			defer vm.Close()
			for j := 0; j < requests; j++ {
				vm.Bind(&Request{Ctx: &fasthttp.RequestCtx{}, Phase: PhaseContent})
				err := vm.Run(proto, 5*time.Second)
				vm.End()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, cosocketPools.Idle(pool), 2)
	// With a backlog, the pool never holds more than pool_size connections
	// in all, so the peer saw at most two.
	assert.LessOrEqual(t, p.accepted.Load(), int32(2))
}

func TestCloseIdleSockets(t *testing.T) {
	p := startPeer(t, waitEOF)
	pool := uniquePool(t)
	r := runSock(t, p.port(), `
		for i = 1, 3 do
			local s = ngx.socket.tcp()
			assert(s:connect("127.0.0.1", PORT, { pool = "`+pool+`" }))
			s:setkeepalive(0) -- the same connection goes back each time
		end
		local a, b = ngx.socket.tcp(), ngx.socket.tcp()
		assert(a:connect("127.0.0.1", PORT, { pool = "`+pool+`" }))
		assert(b:connect("127.0.0.1", PORT, { pool = "`+pool+`" }))
		a:setkeepalive(0)
		b:setkeepalive(0)
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	require.Equal(t, 2, cosocketPools.Idle(pool))
	assert.GreaterOrEqual(t, CloseIdleSockets(), 2)
	assert.Equal(t, 0, cosocketPools.Idle(pool))
	require.Eventually(t, func() bool { return p.eofs.Load() == 2 }, 5*time.Second, 10*time.Millisecond)
}
