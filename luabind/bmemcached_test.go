package luabind

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"luaserve/memcached"
	"luaserve/memcached/server"
)

// bmemBackend is a memcached the tests talk to.
type bmemBackend struct {
	name string
	host string
	port int
}

func (b bmemBackend) addr() string { return net.JoinHostPort(b.host, strconv.Itoa(b.port)) }

// embeddedMemcached starts the embedded server on a free port.
func embeddedMemcached(t testing.TB, cfg server.Config) bmemBackend {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := server.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	a := srv.Addr().(*net.TCPAddr)
	return bmemBackend{name: "embedded", host: "127.0.0.1", port: a.Port}
}

// forEachBackend runs fn against the embedded server and a real memcached
// (skipped, saying why, when /usr/bin/memcached is missing).
func forEachBackend(t *testing.T, fn func(t *testing.T, b bmemBackend)) {
	t.Run("embedded", func(t *testing.T) {
		fn(t, embeddedMemcached(t, server.Config{}))
	})
	t.Run("memcached", func(t *testing.T) {
		fn(t, realMemcached(t))
	})
}

// memcachedBinary is Debian's memcached, which the tests compare with.
const memcachedBinary = "/usr/bin/memcached"

// realMemcached starts memcached on a free loopback port (memcached's
// internal/mctest cannot be imported from here) and stops it with the test;
// the test is skipped when memcached is not installed.
func realMemcached(t testing.TB, extra ...string) bmemBackend {
	t.Helper()
	if _, err := os.Stat(memcachedBinary); err != nil {
		t.Skipf("real memcached not installed at %s (apt-get install memcached): %v", memcachedBinary, err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody")
		}
		cmd := exec.Command(memcachedBinary, append(args, extra...)...)
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()       //nolint:errcheck // killed on purpose
		stop := func() { cmd.Process.Kill(); <-exited } //nolint:errcheck
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		lastErr = nil
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			select {
			case <-exited:
				lastErr = fmt.Errorf("memcached on port %d exited early", port)
			default:
			}
			if lastErr != nil {
				break
			}
			if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
				c.Close()
				t.Cleanup(stop)
				return bmemBackend{name: "memcached", host: "127.0.0.1", port: port}
			}
		}
		stop()
		if lastErr == nil {
			lastErr = fmt.Errorf("memcached on port %d not accepting after 5s", port)
		}
	}
	t.Fatalf("memcached did not start: %v", lastErr)
	return bmemBackend{}
}

// bmemVM is a VM with the test's memcached pools and log.
type bmemVM struct {
	vm    *VM
	log   *testLogger
	pools *memcached.Pools
}

func newBmemVM(t testing.TB, pools *memcached.Pools) *bmemVM {
	t.Helper()
	if pools == nil {
		pools = &memcached.Pools{}
		t.Cleanup(func() { pools.Close() })
	}
	log := &testLogger{}
	vm, err := NewVM(&Options{Logger: log, Pools: pools})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	return &bmemVM{vm: vm, log: log, pools: pools}
}

// run serves one request through code, with HOST and PORT substituted.
func (v *bmemVM) run(t testing.TB, b bmemBackend, code string) (string, error) {
	t.Helper()
	code = strings.ReplaceAll(code, "$HOST", b.host)
	code = strings.ReplaceAll(code, "$PORT", strconv.Itoa(b.port))
	ctx := &fasthttp.RequestCtx{}
	v.vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent, Start: time.Now()})
	err := v.vm.Run(compile(t, "content_by_lua(nginx.conf:1)", code), 10*time.Second)
	v.vm.End()
	return string(ctx.Response.Body()), err
}

func TestBmemSeedExample(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b bmemBackend) {
		v := newBmemVM(t, nil)
		out, err := v.run(t, b, `
			local bmemcached = require "resty.bmemcached"
			local cjson = require "cjson"
			local cluster = bmemcached.cluster({ host = "$HOST", port = $PORT })
			local bucket1 = cluster:bucket()
			local ses = bucket1:session()
			local r = ses:set("a", "7")
			ngx.say(cjson.encode(r))
			r = ses:get("a")
			ses:setkeepalive()
			ngx.say(cjson.encode(r))
			ngx.say(cjson.encode(ses:get("nope")))
		`)
		require.NoError(t, err)
		t.Log(out)
		assert.NotEmpty(t, out)
	})
}
