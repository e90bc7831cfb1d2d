package engine

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile replaces a file the way many editors save: a new file renamed
// over the old one (new inode), unless inPlace.
func writeFile(t *testing.T, path, content string, inPlace bool) {
	t.Helper()
	if inPlace {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		return
	}
	tmp := path + ".swp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// eventually polls get(uri) until it answers want, for at most 3 s.
func (s *testServer) eventually(t *testing.T, uri, want string) time.Duration {
	t.Helper()
	start := time.Now()
	var body string
	for time.Since(start) < 3*time.Second {
		_, body = s.get(t, uri)
		if body == want {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("GET %s: still %q after 3s, want %q\nerror log:\n%s", uri, body, want, s.log.String())
	return 0
}

const reloadServer = `
	lua_package_path "$prefix/lua/?.lua;;";
	server {
		listen 127.0.0.1:0;
		location /script { content_by_lua_file lua/script.lua; }
		location ~ ^/r/(\w+)$ { content_by_lua_file lua/routes/$1.lua; }
		location /mod { content_by_lua_block { ngx.say(require("greeting").text()) } }
		location /mod2 { content_by_lua_block { ngx.say("2:", require("greeting").text()) } }
	}`

func reloadFiles() map[string]string {
	return map[string]string{
		"lua/script.lua":   `ngx.say("v1")`,
		"lua/routes/a.lua": `ngx.say("a1")`,
		"lua/greeting.lua": `return { text = function() return "hello" end }`,
	}
}

func TestHotReloadScriptEdits(t *testing.T) {
	s := startEngine(t, reloadServer, reloadFiles())
	script := filepath.Join(s.prefix, "lua/script.lua")
	_, body := s.get(t, "/script")
	require.Equal(t, "v1\n", body)

	writeFile(t, script, `ngx.say("v2")`, false)
	took := s.eventually(t, "/script", "v2\n")
	assert.Less(t, took, time.Second, "a change is picked up within one second")
	assert.Contains(t, s.log.String(), "reloaded configuration (changed: lua/script.lua): generation 2")

	// A broken script: the old code keeps serving, [error] names file:line.
	writeFile(t, script, "ngx.say(\"v3\"\nlocal = 1", true)
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(s.log.String(), "reload failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	assert.Regexp(t, `\[error\] .*reload failed, still serving generation 2: failed to load external Lua file ".*lua/script.lua": .*lua/script.lua:2: syntax error`, s.log.String())
	_, body = s.get(t, "/script")
	assert.Equal(t, "v2\n", body)

	// Fixing it triggers the next reload.
	writeFile(t, script, `ngx.say("v4")`, true)
	s.eventually(t, "/script", "v4\n")
}

func TestHotReloadVariableScriptsAndModules(t *testing.T) {
	s := startEngine(t, reloadServer, reloadFiles())
	_, body := s.get(t, "/r/a")
	require.Equal(t, "a1\n", body)
	_, body = s.get(t, "/mod")
	require.Equal(t, "hello\n", body)
	_, body = s.get(t, "/mod2")
	require.Equal(t, "2:hello\n", body)

	// A script reached through a variable in the path.
	writeFile(t, filepath.Join(s.prefix, "lua/routes/a.lua"), `ngx.say("a2")`, false)
	s.eventually(t, "/r/a", "a2\n")

	// A module used by two handlers is new in both.
	writeFile(t, filepath.Join(s.prefix, "lua/greeting.lua"), `return { text = function() return "bonjour" end }`, false)
	s.eventually(t, "/mod", "bonjour\n")
	_, body = s.get(t, "/mod2")
	assert.Equal(t, "2:bonjour\n", body)

	// A new route file needs no reload at all.
	writeFile(t, filepath.Join(s.prefix, "lua/routes/b.lua"), `ngx.say("b1")`, false)
	_, body = s.get(t, "/r/b")
	assert.Equal(t, "b1\n", body)
}

func TestHotReloadConfigLocationsAndListen(t *testing.T) {
	s := startEngine(t, reloadServer, reloadFiles())
	conf := filepath.Join(s.prefix, "conf/nginx.conf")
	orig, err := os.ReadFile(conf)
	require.NoError(t, err)
	code, _ := s.get(t, "/added")
	require.Equal(t, 404, code)

	withLoc := strings.Replace(string(orig), "location /script", `location /added { content_by_lua_block { ngx.say("added") } }
		location /script`, 1)
	writeFile(t, conf, withLoc, false)
	s.eventually(t, "/added", "added\n")

	// Move the listener: the new port answers, the old one stops.
	oldAddr := s.addr
	newAddr := freeAddr(t)
	writeFile(t, conf, strings.Replace(withLoc, oldAddr, newAddr, 1), false)
	deadline := time.Now().Add(3 * time.Second)
	for s.e.ListenerAddr(newAddr) == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.NotEmpty(t, s.e.ListenerAddr(newAddr), s.log.String())
	s.addr = newAddr
	_, body := s.get(t, "/added")
	assert.Equal(t, "added\n", body)
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", oldAddr, 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	_, err = net.DialTimeout("tcp", oldAddr, 200*time.Millisecond)
	assert.Error(t, err, "the old port stops accepting")
}

func TestHotReloadOffKeepsCode(t *testing.T) {
	s := startEngine(t, "lua_hot_reload off;\n"+reloadServer, reloadFiles())
	writeFile(t, filepath.Join(s.prefix, "lua/script.lua"), `ngx.say("v2")`, false)
	time.Sleep(3 * ReloadPoll)
	_, body := s.get(t, "/script")
	assert.Equal(t, "v1\n", body)
	require.NoError(t, s.e.Reload(), "an explicit reload (SIGHUP) still works")
	_, body = s.get(t, "/script")
	assert.Equal(t, "v2\n", body)
}

func TestLuaCodeCacheOffRecompilesEveryRequest(t *testing.T) {
	s := startEngine(t, "lua_code_cache off;\nlua_hot_reload off;\n"+reloadServer, reloadFiles())
	_, body := s.get(t, "/mod")
	require.Equal(t, "hello\n", body)
	writeFile(t, filepath.Join(s.prefix, "lua/greeting.lua"), `return { text = function() return "hi" end }`, true)
	_, body = s.get(t, "/mod")
	assert.Equal(t, "hi\n", body, "modules are read again on every request")
	writeFile(t, filepath.Join(s.prefix, "lua/script.lua"), `ngx.say("v2")`, true)
	_, body = s.get(t, "/script")
	assert.Equal(t, "v2\n", body)
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

func heapInUse() uint64 {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestReloadLeaksNothing: after 100 reloads (each building a generation with
// its VM pool, the old one drained and closed) goroutines, descriptors and
// heap are back near the baseline.
func TestReloadLeaksNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("100 reloads")
	}
	s := startEngine(t, "lua_hot_reload off;\n"+reloadServer, reloadFiles())
	warm := func() {
		for _, u := range []string{"/script", "/r/a", "/mod", "/mod2"} {
			code, _ := s.get(t, u)
			require.Equal(t, 200, code)
		}
	}
	warm()
	require.NoError(t, s.e.Reload())
	warm()
	time.Sleep(50 * time.Millisecond)
	g0, fd0, h0 := runtime.NumGoroutine(), openFDs(t), heapInUse()
	for i := 0; i < 100; i++ {
		require.NoError(t, s.e.Reload())
		warm()
	}
	var g1, fd1 int
	var h1 uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond)
		g1, fd1, h1 = runtime.NumGoroutine(), openFDs(t), heapInUse()
		if g1 <= g0+5 && fd1 <= fd0+5 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("after 100 reloads: goroutines %d → %d, open fds %d → %d, heap in use %.1f MB → %.1f MB",
		g0, g1, fd0, fd1, float64(h0)/1e6, float64(h1)/1e6)
	assert.LessOrEqual(t, g1, g0+5, "goroutines")
	assert.LessOrEqual(t, fd1, fd0+5, "file descriptors")
	assert.Less(t, h1, h0+32<<20, "heap grows by less than 32 MB")
	assert.Equal(t, int64(102), s.e.Generation())
}
