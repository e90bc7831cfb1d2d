package spec

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"luaserve/engine"
)

// redisBinary is Debian's redis-server, which .ci/run installs.
const redisBinary = "/usr/bin/redis-server"

// pureLuaSpecs are the acceptance specs of ngx.socket.tcp: Debian's copies
// of the original pure-Lua lua-resty-memcached and lua-resty-redis running
// unchanged.
var pureLuaSpecs = []string{"purelua_memcached_spec.lua", "purelua_redis_spec.lua"}

// TestPureLuaLibraries runs the pure-Lua library specs against a real
// memcached and a real redis-server started on free loopback ports. The
// specs are copied next to a generated purelua_redis_spec.conf that hands
// them redis's address through server-level variables (nginx workers do
// not see the environment, and neither do luaserve's VMs). TestLuaSpecs
// runs the memcached one against the embedded server too; without redis
// the redis spec is pending there.
func TestPureLuaLibraries(t *testing.T) {
	mc := startMemcached(t)
	redis := startRedis(t)
	host, port, err := net.SplitHostPort(redis)
	require.NoError(t, err)

	dir := t.TempDir()
	var paths []string
	for _, name := range pureLuaSpecs {
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		dst := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(dst, src, 0o644))
		paths = append(paths, dst)
	}
	conf := fmt.Sprintf("set $purelua_redis_host %q;\nset $purelua_redis_port %q;\n", host, port)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "purelua_redis_spec.conf"), []byte(conf), 0o644))

	var out bytes.Buffer
	sum, err := engine.RunSpecsSummary(engine.SpecOptions{
		Prefix:    "..",
		Paths:     paths,
		Memcached: mc,
		Out:       &out,
		Verbose:   testing.Verbose(),
	})
	require.NoError(t, err, out.String())
	t.Logf("pure-Lua library specs:\n%s", out.String())
	require.NotZero(t, sum.Passed, "no spec passed: the runner ran nothing")
	if sum.Pending > 0 {
		// Here both libraries and both servers are present: nothing may be
		// skipped.
		t.Errorf("%d spec(s) pending although memcached, redis and the libraries are installed:\n%s", sum.Pending, out.String())
	}
	if sum.Failed > 0 {
		t.Errorf("%d pure-Lua library spec(s) failed:\n%s", sum.Failed, failures(out.String()))
	}
}

// startRedis starts Debian's redis-server on a free loopback port, without
// persistence, or skips when it is not installed.
func startRedis(t *testing.T) string {
	if _, err := os.Stat(redisBinary); err != nil {
		t.Skipf("%s not installed (apt-get install redis-server): %v", redisBinary, err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := exec.Command(redisBinary, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir())
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Kill() //nolint:errcheck // it may have exited already
			<-exited
		})
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitListening(addr, exited); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return ""
}
