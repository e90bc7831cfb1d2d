package luabind

import (
	"bufio"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// startTLSPeer serves echoLines over TLS with a self-signed certificate for
// memc.test and 127.0.0.1, counting completed handshakes.
func startTLSPeer(t *testing.T) (port int, handshakes *atomic.Int32) {
	_, _, certPath, keyPath := rmcCert(t, t.TempDir(), "peer", false, nil, nil)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	require.NoError(t, err)
	handshakes = &atomic.Int32{}
	p := startPeer(t, func(p *sockPeer, c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{pair}})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if tc.Handshake() != nil {
			return
		}
		handshakes.Add(1)
		r := bufio.NewReader(tc)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tc.Write([]byte("tls: " + strings.TrimRight(line, "\r\n") + "\r\n"))
		}
	})
	return p.port(), handshakes
}

func TestSocketSSLHandshake(t *testing.T) {
	port, handshakes := startTLSPeer(t)
	pool := uniquePool(t)
	log := &testLogger{}
	vm, err := NewVM(&Options{Logger: log})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	proto := compile(t, "x", show+`
		local s = ngx.socket.tcp()
		s:settimeout(2000)
		show(s:connect("127.0.0.1", `+strconv.Itoa(port)+`, { pool = "`+pool+`" }))
		show(s:getreusedtimes())
		local sess, err = s:sslhandshake(nil, "memc.test", false)
		show(type(sess), err)
		show(s:send("hello\n"))
		show(s:receive())
		show(type(s:sslhandshake(sess, "memc.test", false)))
		show(s:setkeepalive())
	`)
	for i := 0; i < 2; i++ {
		ctx := &fasthttp.RequestCtx{}
		vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent})
		require.NoError(t, vm.Run(proto, 5*time.Second))
		vm.End()
		assert.Equal(t, "1\n"+strconv.Itoa(i)+"\nuserdata nil\n6\ntls: hello\nuserdata\n1\n", string(ctx.Response.Body()))
	}
	assert.Equal(t, int32(1), handshakes.Load(), "the pooled TLS connection is reused without a new handshake")
	assert.Empty(t, log.lines)

	r := runSock(t, port, show+`
		local s = ngx.socket.tcp()
		s:settimeout(2000)
		show(s:connect("127.0.0.1", PORT))
		show(s:sslhandshake(false, "memc.test", false))
		s:close()
		show(s:sslhandshake())
		show(s:connect("127.0.0.1", PORT))
		show(s:sslhandshake(nil, "memc.test", true))
		show(s:send("x"))
	`, nil, 5*time.Second)
	require.NoError(t, r.err)
	assert.Equal(t, "1\ntrue\nnil closed\n1\nnil 18: self-signed certificate\nnil closed\n", r.body)
	assert.Equal(t, "[error] lua ssl certificate verify error: (18: self-signed certificate)\n"+
		"[error] attempt to send data on a closed socket: u:0000000000000000, c:0000000000000000\n", r.logged())
}
