// Package spec runs the Lua specs of spec/*_spec.lua under `go test` (and so
// under `make test`), through the same runner as `luaserve test`.
package spec

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"luaserve/engine"
)

// memcachedBinary is Debian's memcached, which .ci/run installs.
const memcachedBinary = "/usr/bin/memcached"

// TestLuaSpecs runs every spec twice: against the embedded memcached and
// against a real one, since differences between the two are bugs.
func TestLuaSpecs(t *testing.T) {
	backends := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"embedded", func(*testing.T) string { return "" }},
		{"memcached", startMemcached},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr := b.addr(t)
			var out bytes.Buffer
			sum, err := engine.RunSpecsSummary(engine.SpecOptions{
				Prefix:    "..",
				Paths:     []string{"spec"},
				Memcached: addr,
				Out:       &out,
			})
			require.NoError(t, err, out.String())
			t.Logf("luaserve test (%s):\n%s", b.name, out.String())
			require.NotZero(t, sum.Passed, "no spec passed: the runner ran nothing")
			if sum.Failed > 0 {
				t.Errorf("%d Lua spec(s) failed against %s memcached:\n%s", sum.Failed, b.name, failures(out.String()))
			}
		})
	}
}

// failures keeps the runner's failure reports (and the error log lines it
// prints with them), dropping the per-file lines of files that passed.
func failures(out string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(line, "ok   ") || strings.HasPrefix(line, "--- PENDING") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// startMemcached starts Debian's memcached on a free loopback port for the
// test, or skips when it is not installed.
func startMemcached(t *testing.T) string {
	if _, err := os.Stat(memcachedBinary); err != nil {
		t.Skipf("%s not installed (apt-get install memcached): %v", memcachedBinary, err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody")
		}
		cmd := exec.Command(memcachedBinary, args...)
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
	t.Fatalf("memcached did not start: %v", lastErr)
	return ""
}

// waitListening waits up to 5 s for addr to accept a connection.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("memcached exited early: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
