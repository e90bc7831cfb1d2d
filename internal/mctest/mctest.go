// Package mctest starts real memcached processes for tests: each on its own
// free loopback port, stopped when the test ends.
package mctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Binary is the memcached executable tests run against.
const Binary = "/usr/bin/memcached"

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mctest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a running memcached.
type Process struct {
	Addr   string
	Port   int
	cmd    *exec.Cmd
	waitCh chan error
}

// Real starts Debian's memcached on a free loopback port with extra flags
// (e.g. "-m", "8", "-I", "2m") and returns once it accepts connections. The
// test is skipped when memcached is not installed; the process is killed when
// the test ends.
func Real(t testing.TB, extra ...string) *Process {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("mctest: %s not installed (apt-get install memcached): %v", Binary, err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := FreePort(t)
		p, err := StartOn(port, extra...)
		if err == nil {
			t.Cleanup(p.Stop)
			return p
		}
		lastErr = err
	}
	t.Fatalf("mctest: memcached did not start: %v", lastErr)
	return nil
}

// StartOn starts memcached on 127.0.0.1:port (restart after Stop, for
// failover tests) and waits up to 5 s for it to accept connections.
func StartOn(port int, extra ...string) (*Process, error) {
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, extra...)
	cmd := exec.Command(Binary, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	p := &Process{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, cmd: cmd, waitCh: exited}
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("memcached exited early: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", p.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-exited
	return nil, fmt.Errorf("memcached on %s not accepting after 5s", p.Addr)
}

// Stop kills the process and waits for it; calling it twice is harmless.
func (p *Process) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill() //nolint:errcheck // already gone is fine
	<-p.waitCh
	p.cmd = nil
}
