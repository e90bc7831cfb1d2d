package luabind

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// buildLuaserve builds the binary from this checkout.
func buildLuaserve(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go tool is not on PATH to build luaserve: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "luaserve")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/luaserve")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// serveExamples runs the built binary on a copy of examples/ with the
// bmemcached routes, its embedded memcached and HTTP on free ports (the
// modules' cluster gets the memcached port; nothing else changes), and
// returns the HTTP base URL and the prefix.
func serveExamples(t testing.TB) (string, string) {
	t.Helper()
	bin := buildLuaserve(t)
	prefix := t.TempDir()
	mcPort, httpPort := freePort(t), freePort(t)
	for _, dir := range []string{"conf/locations", "lua", "logs"} {
		require.NoError(t, os.MkdirAll(filepath.Join(prefix, dir), 0o755))
	}
	conf := "error_log logs/error.log info;\npid logs/luaserve.pid;\n" +
		"memcached_embedded 127.0.0.1:" + strconv.Itoa(mcPort) + ";\n" +
		"http {\n  lua_package_path \"$prefix/lua/?.lua;;\";\n" +
		"  server {\n    listen 127.0.0.1:" + strconv.Itoa(httpPort) + ";\n    include locations/*.conf;\n  }\n}\n"
	require.NoError(t, os.WriteFile(filepath.Join(prefix, "conf/nginx.conf"), []byte(conf), 0o644))
	loc, err := os.ReadFile("../examples/conf/locations/bmemcached.conf")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(prefix, "conf/locations/bmemcached.conf"), loc, 0o644))
	mods, err := filepath.Glob("../examples/lua/*.lua")
	require.NoError(t, err)
	for _, m := range mods {
		src, err := os.ReadFile(m)
		require.NoError(t, err)
		patched := strings.ReplaceAll(string(src), `{ host = "127.0.0.1" }`, `{ host = "127.0.0.1", port = `+strconv.Itoa(mcPort)+` }`)
		require.NoError(t, os.WriteFile(filepath.Join(prefix, "lua", filepath.Base(m)), []byte(patched), 0o644))
	}
	cmd := exec.Command(bin, "-p", prefix, "-c", "conf/nginx.conf")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // stopped on purpose
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-exited
		}
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(prefix, "logs/error.log")); err == nil {
				t.Logf("error.log:\n%s", log)
			}
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatal("luaserve exited before serving")
		default:
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(httpPort), 100*time.Millisecond); err == nil {
			c.Close()
			return base, prefix
		}
		if time.Now().After(deadline) {
			t.Fatal("luaserve is not serving after 10s")
		}
	}
}

// TestBmemExamplesEndToEnd serves the seed example config with the built
// binary and checks every route answers the documented JSON shape.
func TestBmemExamplesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the luaserve binary")
	}
	base, prefix := serveExamples(t)
	cas := `"CAS":\[(\d+,){7}\d+\]`
	ok := `"status_code":0,"status":"No error","type":0`
	tests := []struct {
		uri  string
		code int
		want string // regexp of the whole body
	}{
		{"/test_b1?key=a&value=7", 200, `\{"header":\{"opaque":0,` + cas + `,` + ok + `\},"value":"7"\}`},
		{"/test_b1?key=a&value=8", 200, `\{"header":\{"opaque":0,` + cas + `,` + ok + `\},"value":"8"\}`},
		{"/test_b2?key=b&value=x%20y", 200, `\{"header":\{"opaque":0,` + cas + `,` + ok + `\},"value":"x%20y"\}`},
		{"/test_async", 200, `\{"header":\{"opaque":\d+,` + cas + `,` + ok + `\}\}`},
		{"/test_setq", 200, `\[\{"header":\{"opaque":\d+,"CAS":\[0,0,0,0,0,0,0,0\],"status_code":2,"status":"Key exists","type":0\},"value":"Data exists for key.","request":\{"1":77,"2":"1234567890","expire":0\}\}\]`},
		{"/test_batch", 200, `\[(\{"key":\d+,"status":"No error"\},){19}\{"key":20,"status":"No error"\}\]`},
		{"/test_b1?key=a", 500, `(?s).*500 Internal Server Error.*`},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			resp, err := client.Get(base + tt.uri)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.Equal(t, tt.code, resp.StatusCode)
			assert.Regexp(t, regexp.MustCompile(`^`+tt.want+`\n?$`), string(body))
		})
	}
	// The uncaught error is logged as OpenResty logs it.
	log, err := os.ReadFile(filepath.Join(prefix, "logs/error.log"))
	require.NoError(t, err)
	assert.Regexp(t, `\[error\] .*set: key and value required`, string(log))
}
