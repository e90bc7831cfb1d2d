package spec

// The OpenResty differential test: every location of spec/compat/*.conf is
// served both by Debian's nginx with lua-nginx-module (LuaJIT) and by
// luaserve, the same requests go to both, and the responses must match —
// status, decoded body and the headers a handler controls. Where luaserve is
// known to differ, compatKnownDifferences says why; such a case must still
// differ, so a fix shows up as a failure asking to drop the entry.
//
// Corpus format: a file spec/compat/AREA.conf is server-level nginx config
// (locations under /compat/AREA/). Lines starting with "#>" outside the Lua
// bodies declare the requests, in order:
//
//	#> GET /compat/area/case?x=1     a request (method, raw request target)
//	#>   H Name: value               a request header (as sent, case kept)
//	#>   H "Name:  value \t"          one with edge spaces (a Go-quoted string)
//	#>   B "a=1&b=2"                 a request body (a Go-quoted string)
//	#>   S                           compare the status only (error pages
//	                                 whose text is not part of the contract)
//
// The helpers of spec/compat/lua/ (require "compat") are on both servers'
// lua_package_path.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/engine"
)

const (
	compatNginx     = "/usr/sbin/nginx"
	compatLuaModule = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
	compatNDKModule = "/usr/lib/nginx/modules/ndk_http_module.so"
	// compatHost is the Host every request sends, so ngx.var.host and
	// absolute redirects agree.
	compatHost = "localhost"
)

// compatKnownDifferences lists the cases (area, method and target, as in the
// subtest's log) where luaserve is known to answer differently from
// OpenResty, each with the reason and where the fix belongs. A listed case
// that stops differing fails the test, so the list cannot rot.
var compatKnownDifferences = map[string]string{}

// compatUnstable names the known differences whose luaserve side varies
// from run to run: matching OpenResty once does not mean they are fixed.
var compatUnstable = map[string]bool{}

// compatHTTPConf is the http-level config both servers share.
const compatHTTPConf = `
    lua_shared_dict compat 1m;
    lua_package_path "%s/?.lua;;";
`

// compatCase is one request of the corpus and what to compare.
type compatCase struct {
	area       string
	line       int
	nth        int // the nth request with this method and target, from 1
	method     string
	target     string
	headers    []string // "Name: value", as sent
	body       string
	statusOnly bool
}

func (c *compatCase) id() string {
	id := c.area + " " + c.method + " " + c.target
	if c.nth > 1 {
		id += " (" + strconv.Itoa(c.nth) + ")"
	}
	return id
}

// loadCompatCorpus reads every spec/compat/*.conf: its text (the locations)
// and its requests.
func loadCompatCorpus(t *testing.T) (locations string, cases []*compatCase) {
	files, err := filepath.Glob(filepath.Join("compat", "*.conf"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no corpus in spec/compat/*.conf")
	sort.Strings(files)
	var conf strings.Builder
	count := map[string]int{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		area := strings.TrimSuffix(filepath.Base(file), ".conf")
		fmt.Fprintf(&conf, "\n        # ---- %s\n", file)
		conf.Write(data)
		var cur *compatCase
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "#>") {
				continue
			}
			line = strings.TrimSpace(line[2:])
			where := fmt.Sprintf("%s:%d", file, i+1)
			switch {
			case strings.HasPrefix(line, "H "):
				require.NotNil(t, cur, "%s: header before any request", where)
				h := strings.TrimSpace(line[2:])
				if strings.HasPrefix(h, `"`) {
					h, err = strconv.Unquote(h)
					require.NoError(t, err, "%s: a quoted header must be a Go-quoted string", where)
				}
				cur.headers = append(cur.headers, h)
			case strings.HasPrefix(line, "B "):
				require.NotNil(t, cur, "%s: body before any request", where)
				cur.body, err = strconv.Unquote(strings.TrimSpace(line[2:]))
				require.NoError(t, err, "%s: body must be a Go-quoted string", where)
			case line == "S":
				require.NotNil(t, cur, "%s: S before any request", where)
				cur.statusOnly = true
			default:
				method, target, ok := strings.Cut(line, " ")
				require.True(t, ok && method != "" && target != "", "%s: want \"#> METHOD TARGET\", got %q", where, line)
				cur = &compatCase{area: area, line: i + 1, method: method, target: strings.TrimSpace(target)}
				count[cur.id()]++
				cur.nth = count[cur.id()]
				cases = append(cases, cur)
			}
		}
	}
	return conf.String(), cases
}

// TestCompatAgainstOpenResty is issue 4's differential test.
func TestCompatAgainstOpenResty(t *testing.T) {
	for _, p := range []string{compatNginx, compatLuaModule, compatNDKModule} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("the OpenResty differential test needs Debian's nginx with lua-nginx-module: %s is missing (apt-get install nginx-extras lua-cjson; scripts/install-deps.sh does it)", p)
		}
	}
	locations, cases := loadCompatCorpus(t)
	luaDir, err := filepath.Abs(filepath.Join("compat", "lua"))
	require.NoError(t, err)
	httpConf := fmt.Sprintf(compatHTTPConf, luaDir)

	nginxAddr := startCompatNginx(t, httpConf, locations)
	luaserveAddr := startCompatLuaserve(t, httpConf, locations)

	seen := map[string]bool{}
	identical, known := 0, 0
	for _, c := range cases {
		require.False(t, seen[c.id()], "spec/compat/%s.conf:%d: request %q is declared twice", c.area, c.line, c.id())
		seen[c.id()] = true
		t.Run(strings.Replace(c.id(), " ", "/", 1), func(t *testing.T) {
			want := normaliseCompat(t, doCompat(t, nginxAddr, c), nginxAddr, c)
			got := normaliseCompat(t, doCompat(t, luaserveAddr, c), luaserveAddr, c)
			if reason, isKnown := compatKnownDifferences[c.id()]; isKnown {
				if want == got && compatUnstable[c.id()] {
					t.Logf("known unstable difference matched this time (%s)", reason)
					identical++
					return
				}
				if want == got {
					t.Errorf("spec/compat/%s.conf:%d: %q now matches OpenResty: remove it from compatKnownDifferences (%s)", c.area, c.line, c.id(), reason)
					return
				}
				known++
				t.Logf("known difference (%s):\n--- OpenResty\n%s\n--- luaserve\n%s", reason, want, got)
				return
			}
			if assert.Equal(t, want, got, "spec/compat/%s.conf:%d: luaserve differs from OpenResty (want = nginx, got = luaserve)", c.area, c.line) {
				identical++
			}
		})
	}
	for id := range compatKnownDifferences {
		assert.True(t, seen[id], "compatKnownDifferences names %q, which is not in the corpus", id)
	}
	t.Logf("compat: %d cases, %d identical, %d known differences, %d unexpected differences",
		len(cases), identical, known, len(cases)-identical-known)
}

// compatResponse is a raw HTTP/1.1 response with its body de-chunked.
type compatResponse struct {
	status  int
	headers [][2]string // name as sent, value
	body    []byte
	broken  string // why no complete response could be read
}

// doCompat sends c over a fresh connection with raw bytes, so the request
// target and header casing reach the server exactly as written, and reads
// the raw response (Go's client would canonicalise the header names we are
// comparing).
func doCompat(t *testing.T, addr string, c *compatCase) *compatResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", c.method, c.target, compatHost)
	for _, h := range c.headers {
		req.WriteString(h + "\r\n")
	}
	if c.body != "" {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(c.body))
	}
	req.WriteString("\r\n" + c.body)
	_, err = conn.Write(req.Bytes())
	require.NoError(t, err)
	resp, err := readCompatResponse(bufio.NewReader(conn), c.method == "HEAD")
	if err != nil {
		// An aborted response is an outcome to compare, not a test failure:
		// nginx drops the connection when a handler fails after output.
		return &compatResponse{broken: err.Error()}
	}
	return resp
}

func readCompatResponse(r *bufio.Reader, head bool) (*compatResponse, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("status line: %w", err)
	}
	parts := strings.SplitN(strings.TrimRight(line, "\r\n"), " ", 3)
	if len(parts) < 2 {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	resp := &compatResponse{}
	if resp.status, err = strconv.Atoi(parts[1]); err != nil {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	chunked, length := false, -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("headers: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", line)
		}
		value = strings.TrimSpace(value)
		resp.headers = append(resp.headers, [2]string{name, value})
		switch strings.ToLower(name) {
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		case "content-length":
			if length, err = strconv.Atoi(value); err != nil {
				return nil, fmt.Errorf("bad Content-Length %q", value)
			}
		}
	}
	switch {
	case head || resp.status == 204 || resp.status == 304:
	case chunked:
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return nil, fmt.Errorf("chunk size: %w", err)
			}
			size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 32)
			if err != nil || size < 0 {
				return nil, fmt.Errorf("bad chunk size %q", line)
			}
			if size == 0 {
				break
			}
			chunk := make([]byte, size+2)
			if _, err := io.ReadFull(r, chunk); err != nil {
				return nil, fmt.Errorf("chunk: %w", err)
			}
			resp.body = append(resp.body, chunk[:size]...)
		}
	case length >= 0:
		resp.body = make([]byte, length)
		if _, err := io.ReadFull(r, resp.body); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	default:
		if resp.body, err = io.ReadAll(r); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("body: %w", err)
		}
	}
	return resp, nil
}

// compatIgnoredHeaders differ between any two servers (or by framing) and
// are not under a handler's control.
var compatIgnoredHeaders = map[string]bool{
	"server": true, "date": true, "connection": true, "keep-alive": true,
	"content-length": true, "transfer-encoding": true,
}

// normaliseCompat renders a response as text for comparison: the status,
// the headers that matter (grouped by name, order kept within a name, the
// name's casing kept), then the body. The server's own port becomes PORT,
// and nginx's error-page signature becomes luaserve's (a documented
// difference: the signature names the server).
func normaliseCompat(t *testing.T, r *compatResponse, addr string, c *compatCase) string {
	t.Helper()
	var b strings.Builder
	if r.broken != "" {
		return "no complete response: " + r.broken + "\n"
	}
	fmt.Fprintf(&b, "status %d\n", r.status)
	if c.statusOnly {
		return b.String()
	}
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	fix := func(s string) string {
		s = strings.ReplaceAll(s, ":"+port, ":PORT")
		return strings.ReplaceAll(s, "<hr><center>nginx/1.22.1</center>", "<hr><center>luaserve</center>")
	}
	hs := make([][2]string, 0, len(r.headers))
	for _, h := range r.headers {
		if !compatIgnoredHeaders[strings.ToLower(h[0])] {
			hs = append(hs, h)
		}
	}
	sort.SliceStable(hs, func(i, j int) bool { return strings.ToLower(hs[i][0]) < strings.ToLower(hs[j][0]) })
	for _, h := range hs {
		fmt.Fprintf(&b, "%s: %s\n", h[0], fix(h[1]))
	}
	b.WriteString("\n")
	b.WriteString(fix(string(r.body)))
	return b.String()
}

// freeCompatAddr returns a loopback address whose port was free a moment
// ago (nginx rejects port 0 in listen).
func freeCompatAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// compatConf is the config of both servers: %s and %s are nginx's
// load_module lines, then the http-level config, the server, and nginx's
// temp paths, which come last so both configs number their lines alike.
const compatConf = `%s
%s
daemon off;
master_process off;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
%s
%s
%s
}
`

const compatNginxTemps = `
    client_body_temp_path PREFIX/tmp/body;
    proxy_temp_path PREFIX/tmp/proxy;
    fastcgi_temp_path PREFIX/tmp/fastcgi;
    uwsgi_temp_path PREFIX/tmp/uwsgi;
    scgi_temp_path PREFIX/tmp/scgi;
`

const compatServer = `
    server {
        listen %s;
        server_name %s;
%s
    }
`

// startCompatNginx starts real nginx on the corpus (one process, no master,
// so nothing outlives the test) and returns its address.
func startCompatNginx(t *testing.T, httpConf, locations string) string {
	prefix := t.TempDir()
	// nginx may drop privileges for parts of its work: let it read the prefix.
	require.NoError(t, os.Chmod(prefix, 0o755))
	for _, d := range []string{"logs", "tmp", "conf"} {
		require.NoError(t, os.MkdirAll(filepath.Join(prefix, d), 0o755))
	}
	addr := freeCompatAddr(t)
	conf := fmt.Sprintf(compatConf, "load_module "+compatNDKModule+";", "load_module "+compatLuaModule+";",
		httpConf, fmt.Sprintf(compatServer, addr, compatHost, locations),
		strings.ReplaceAll(compatNginxTemps, "PREFIX", prefix))
	confPath := filepath.Join(prefix, "conf", "nginx.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o644))

	cmd := exec.Command(compatNginx, "-p", prefix, "-c", confPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
			t.Logf("nginx config: %s\nnginx error.log:\n%s", confPath, log)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
			t.Fatalf("nginx exited: %v\nstderr: %s\nerror.log: %s", waitErr, stderr.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s: %s", addr, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// compatLog is the engine's error log, readable while it writes.
type compatLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *compatLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *compatLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startCompatLuaserve starts an in-process engine on the same corpus. Its
// config differs from nginx's only in the process-level lines luaserve has
// no use for (load_module, temp paths).
func startCompatLuaserve(t *testing.T, httpConf, locations string) string {
	prefix := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(prefix, "conf"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(prefix, "logs"), 0o755))
	addr := freeCompatAddr(t)
	// The same line numbers as nginx's config, so chunk names in error
	// messages ("content_by_lua(nginx.conf:42)") agree.
	conf := fmt.Sprintf(compatConf, "# load_module: nginx only", "# load_module: nginx only",
		httpConf, fmt.Sprintf(compatServer, addr, compatHost, locations), "")
	confPath := filepath.Join(prefix, "conf", "nginx.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o644))
	log := &compatLog{}
	e, err := engine.New(engine.Options{Prefix: prefix, ErrorLog: log, NoHotReload: true})
	require.NoError(t, err, "luaserve refused the config %s:\n%s", confPath, log.String())
	require.NoError(t, e.Start(), "luaserve did not start:\n%s", log.String())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Shutdown(ctx, false)
		if t.Failed() {
			t.Logf("luaserve config: %s\nluaserve error log:\n%s", confPath, log.String())
		}
	})
	addrs := e.Addrs()
	require.NotEmpty(t, addrs)
	return addrs[0]
}
