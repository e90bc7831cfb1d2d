package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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

// binPath is luaserve built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "luaserve-e2e-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "luaserve")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building luaserve: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// prefixWith writes files under a fresh prefix; "ADDR" in any file becomes
// a free loopback address, returned too.
func prefixWith(t *testing.T, files map[string]string) (string, string) {
	t.Helper()
	prefix := t.TempDir()
	addr := freeAddr(t)
	for name, content := range files {
		p := filepath.Join(prefix, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(strings.ReplaceAll(content, "ADDR", addr)), 0o644))
	}
	return prefix, addr
}

type proc struct {
	cmd    *exec.Cmd
	prefix string
	addr   string
	exited chan error
}

// start runs the binary on prefix and waits until addr accepts.
func start(t *testing.T, prefix, addr string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"-p", prefix}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, prefix: prefix, addr: addr, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("luaserve did not listen on %s; error log:\n%s", addr, p.errorLog())
	return nil
}

func (p *proc) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(p.prefix, "logs/error.log"))
	return string(b)
}

var client = &fasthttp.Client{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxConnsPerHost: 512}

func (p *proc) do(t *testing.T, method, uri, body string) (int, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + p.addr + uri)
	if body != "" {
		req.SetBodyString(body)
	}
	require.NoError(t, client.DoTimeout(req, resp, 10*time.Second))
	return resp.StatusCode(), string(resp.Body())
}

const e2eConf = `
error_log logs/error.log info;
pid logs/luaserve.pid;
http {
	lua_package_path "$prefix/lua/?.lua;;";
	access_log logs/access.log;
	server {
		listen ADDR;
		lua_request_timeout 300ms;
		client_max_body_size 10;
		location = /hello { content_by_lua_block { ngx.say("hello") } }
		location /version { content_by_lua_file lua/version.lua; }
		location /err { content_by_lua_block { error("kaboom") } }
		location /loop { content_by_lua_block { while true do end } }
		location /body { content_by_lua_block { ngx.req.read_body() ngx.print(ngx.req.get_body_data()) } }
	}
}
`

func e2eFiles() map[string]string {
	return map[string]string{
		"conf/nginx.conf": e2eConf,
		"lua/version.lua": `local v = require("ver").v for i = 1, 20 do ngx.say(v) end`,
		"lua/ver.lua":     `return { v = "v0" }`,
	}
}

func TestCLIConfigTest(t *testing.T) {
	prefix, _ := prefixWith(t, e2eFiles())
	out, err := exec.Command(binPath, "-p", prefix, "-t").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "syntax is ok")
	assert.Contains(t, string(out), "test is successful")

	bad, _ := prefixWith(t, map[string]string{"conf/nginx.conf": "http {\n server {\n  listen ADDR;\n  bogus_directive on;\n }\n}\n"})
	out, err = exec.Command(binPath, "-p", bad, "-t").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), `unknown directive "bogus_directive" in `+bad+`/conf/nginx.conf:4`)
	assert.Contains(t, string(out), "test failed")

	// Serving a broken config fails the same way, before listening.
	out, err = exec.Command(binPath, "-p", bad).CombinedOutput()
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), "nginx.conf:4")

	out, err = exec.Command(binPath, "version").CombinedOutput()
	require.NoError(t, err)
	assert.Contains(t, string(out), "luaserve version")
}

func TestCLIServesErrorPathsAndStopsGracefully(t *testing.T) {
	prefix, addr := prefixWith(t, e2eFiles())
	p := start(t, prefix, addr)

	code, body := p.do(t, "GET", "/hello", "")
	assert.Equal(t, 200, code)
	assert.Equal(t, "hello\n", body)
	code, _ = p.do(t, "GET", "/nope", "")
	assert.Equal(t, 404, code)
	code, _ = p.do(t, "POST", "/body", "this body is too large")
	assert.Equal(t, 413, code)
	code, body = p.do(t, "POST", "/body", "small")
	assert.Equal(t, 200, code)
	assert.Equal(t, "small", body)
	code, _ = p.do(t, "GET", "/err", "")
	assert.Equal(t, 500, code)
	code, _ = p.do(t, "GET", "/loop", "")
	assert.Equal(t, 500, code)
	code, _ = p.do(t, "GET", "/hello", "")
	assert.Equal(t, 200, code, "still serving after an error and a runaway script")

	log := p.errorLog()
	assert.Regexp(t, `\[error\] \d+#0: \*\d+ lua entry thread aborted: runtime error: content_by_lua\(nginx.conf:13\):1: kaboom`, log)
	assert.Contains(t, log, "lua_request_timeout (300ms) exceeded")

	// -s quit finds the process through its pid file; it exits 0.
	out, err := exec.Command(binPath, "-p", prefix, "-s", "quit").CombinedOutput()
	require.NoError(t, err, string(out))
	select {
	case err := <-p.exited:
		assert.NoError(t, err, "graceful stop exits 0")
		p.exited <- err
	case <-time.After(10 * time.Second):
		t.Fatal("luaserve did not stop on -s quit")
	}
	_, err = os.Stat(filepath.Join(prefix, "logs/luaserve.pid"))
	assert.True(t, os.IsNotExist(err), "pid file removed")
	access, _ := os.ReadFile(filepath.Join(prefix, "logs/access.log"))
	assert.Regexp(t, `127\.0\.0\.1 - - \[[^]]+\] "GET /hello HTTP/1\.1" 200 6 "-" "[^"]*"`, string(access))
}

// TestCLIReloadUnderLoad: clients hammer the server while 20 reloads happen
// (file edits picked up by the watcher and SIGHUPs, mixed). No request may
// fail, and every response must come whole from one version of the code.
func TestCLIReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	prefix, addr := prefixWith(t, e2eFiles())
	p := start(t, prefix, addr)
	verFile := filepath.Join(prefix, "lua/ver.lua")

	type sample struct {
		at   time.Time
		lat  time.Duration
		body string
	}
	var (
		stop     atomic.Bool
		failures atomic.Int64
		mu       sync.Mutex
		samples  []sample
		wg       sync.WaitGroup
	)
	load := func() {
		defer wg.Done()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for !stop.Load() {
			req.SetRequestURI("http://" + addr + "/version")
			t0 := time.Now()
			err := client.DoTimeout(req, resp, 10*time.Second)
			lat := time.Since(t0)
			if err != nil || resp.StatusCode() != 200 {
				failures.Add(1)
				t.Logf("request failed: %v status %d", err, resp.StatusCode())
				continue
			}
			mu.Lock()
			samples = append(samples, sample{t0, lat, string(resp.Body())})
			mu.Unlock()
		}
	}
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go load()
	}
	time.Sleep(500 * time.Millisecond) // a baseline without reloads
	baselineEnd := time.Now()

	var pickup []time.Duration
	for i := 1; i <= 20; i++ {
		want := fmt.Sprintf("v%d", i)
		require.NoError(t, os.WriteFile(verFile, []byte(`return { v = "`+want+`" }`), 0o644))
		written := time.Now()
		if i%2 == 0 {
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
		}
		// Wait for the first response with the new version.
		deadline := written.Add(5 * time.Second)
		for {
			mu.Lock()
			var seen time.Time
			for j := len(samples) - 1; j >= 0 && samples[j].at.After(written); j-- {
				if strings.HasPrefix(samples[j].body, want+"\n") {
					seen = samples[j].at.Add(samples[j].lat)
				}
			}
			mu.Unlock()
			if !seen.IsZero() {
				pickup = append(pickup, seen.Sub(written))
				break
			}
			require.True(t, time.Now().Before(deadline), "version %s never served", want)
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	assert.Zero(t, failures.Load(), "no failed or reset request during reloads; error log:\n%s", p.errorLog())
	var base, during []time.Duration
	for _, s := range samples {
		lines := strings.Split(strings.TrimSuffix(s.body, "\n"), "\n")
		require.Len(t, lines, 20)
		for _, l := range lines {
			require.Equal(t, lines[0], l, "a response mixes two versions")
		}
		if s.at.Before(baselineEnd) {
			base = append(base, s.lat)
		} else {
			during = append(during, s.lat)
		}
	}
	sort.Slice(pickup, func(i, j int) bool { return pickup[i] < pickup[j] })
	t.Logf("%d requests (%d before reloads); write → first new response: median %s, max %s; p99 latency without reloads %s, during reloads %s",
		len(samples), len(base), pickup[len(pickup)/2], pickup[len(pickup)-1], p99(base), p99(during))
	assert.Less(t, pickup[len(pickup)/2], time.Second)
	assert.Contains(t, p.errorLog(), "generation 21")
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)*99/100]
}

// TestCLIReloadSignalAndListenChange uses `-s reload` after moving the
// listener: the new port answers, the old one stops.
func TestCLIReloadSignalAndListenChange(t *testing.T) {
	prefix, addr := prefixWith(t, e2eFiles())
	p := start(t, prefix, addr, "-hot-reload=false")
	conf := filepath.Join(prefix, "conf/nginx.conf")
	raw, err := os.ReadFile(conf)
	require.NoError(t, err)
	newAddr := freeAddr(t)
	require.NoError(t, os.WriteFile(conf, []byte(strings.Replace(string(raw), addr, newAddr, 1)), 0o644))
	out, err := exec.Command(binPath, "-p", prefix, "-s", "reload").CombinedOutput()
	require.NoError(t, err, string(out))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", newAddr, 100*time.Millisecond); err == nil {
			c.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "new port never answered:\n%s", p.errorLog())
		time.Sleep(20 * time.Millisecond)
	}
	p.addr = newAddr
	code, _ := p.do(t, "GET", "/hello", "")
	assert.Equal(t, 200, code)
	_, err = net.DialTimeout("tcp", addr, 200*time.Millisecond)
	assert.Error(t, err, "old port closed")
	sc := bufio.NewScanner(strings.NewReader(p.errorLog()))
	reloads := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), "[notice]") && strings.Contains(sc.Text(), "reloaded configuration (signal): generation 2") {
			reloads++
		}
	}
	assert.Equal(t, 1, reloads, "one [notice] line per reload")
}
