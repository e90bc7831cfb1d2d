package luabind

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cosocketCases drives ngx.socket.tcp through receive patterns, receiveuntil
// with every size and inclusive setting over patterns with overlapping
// prefixes, peers that close, timeouts, argument errors and keepalive. The
// peer answers a first line "<mode><hex data>": it sends the data, then
// closes (mode C) or waits for the client to close (mode N).
const cosocketCases = `
local function show(...)
  local n = select("#", ...)
  local t = {}
  for i = 1, n do t[i] = tostring((select(i, ...))):gsub("0x%x+", "0x") end
  ngx.say(table.concat(t, " "))
end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
local function open(data, mode)
  local s = ngx.socket.tcp()
  s:settimeout(100)
  assert(s:connect("127.0.0.1", PORT))
  s:send(mode .. hex(data) .. "\n")
  return s
end
local function case(name, data, mode, fn)
  ngx.say("== ", name)
  local s = open(data, mode)
  local ok, err = pcall(fn, s)
  if not ok then ngx.say("ERR ", err) end
  s:close()
end
for _, pat in ipairs({"--", "aab", "\r\n--abc", "abab", "xyx", "ab", "-"}) do
  for _, data in ipairs({"aaab-aab-ab", "xx--yy---z", "abababab--abab", "xyxyx-xyxxyx", "q\r\n--ab\r\n--abc!", "aabaab"}) do
    for _, size in ipairs({0, 1, 3, 4, 7}) do
      for _, incl in ipairs({false, true}) do
        case(pat .. "|" .. data .. "|" .. size .. "|" .. tostring(incl), data, "C", function(s)
          local r = s:receiveuntil(pat, {inclusive = incl})
          for i = 1, 12 do
            local d, e, p
            if size == 0 then d, e, p = r() else d, e, p = r(size) end
            show(d, e, p)
            if e then break end
          end
        end)
      end
    end
  end
end
case("line", "a\r\nb\rc\n\r\r\nlast", "C", function(s) for i = 1, 5 do show(s:receive()) end end)
case("nums", "0123456789", "N", function(s) show(s:receive(3)) show(s:receive("2")) show(s:receive(0)) show(s:receive(2.7)) show(s:receive(100)) show(s:receive()) end)
case("all", "abc", "C", function(s) show(s:receive("*a")) show(s:receive("*a")) show(s:receive()) show(s:send("x")) show(s:setkeepalive()) end)
case("allN", "abc", "N", function(s) show(s:receive("*a")) show(s:receive(1)) end)
case("any", "abcdef", "C", function(s) show(s:receiveany(4)) show(s:receiveany(4)) show(s:receiveany(4)) show(s:receiveany(4)) end)
case("args", "abcdef\n", "N", function(s)
  show(pcall(s.receive, s, "*x")) show(pcall(s.receive, s, -1)) show(pcall(s.receive, s, {})) show(pcall(s.receive, s, "*L"))
  show(pcall(s.receive, s, 1, 2)) show(pcall(s.receiveany, s, 0)) show(pcall(s.receiveany, s, "x")) show(pcall(s.receiveany, s, "3"))
  show(pcall(s.receiveuntil, s)) show(pcall(s.receiveuntil, s, 5)) show(pcall(s.send, s, {x=1})) show(pcall(s.send, s, print)) show(pcall(s.send, s, {print}))
  show(pcall(s.send, s)) show(s:send({})) show(s:send("")) show(s:send(nil)) show(pcall(s.send, s, true)) show(pcall(s.send, s, ngx.null)) show(pcall(s.send, s, {true}))
  show(s:setoption("tcp-nodelay", true)) show(s:setoption("keepalive", 1)) show(s:setoption("sndbuf", 4096)) show(pcall(s.setoption, s, "keepalive"))
  show(pcall(s.setoption, s)) show(s:setoption("bogus", 1))
  show(pcall(s.setkeepalive, s, 1, 0)) show(pcall(s.setkeepalive, s, -1)) show(pcall(s.setkeepalive, s, "x"))
  show(s:getreusedtimes())
  show(s:receive(2)) show(s:setkeepalive()) show(s:receive(1)) show(s:getreusedtimes()) show(s:close())
end)
case("timeout", "abc", "N", function(s) show(s:receive(5)) show(s:receive(1)) show(s:receive()) show(s:receiveany(3)) local r = s:receiveuntil("--") show(r()) show(s:send("more")) end)
case("timeout in a pattern", "ab-", "N", function(s) local r = s:receiveuntil("--") show(r()) show(r()) end)
case("closed mid-response", "VALUE k 0 10\r\nabc", "C", function(s)
  show(s:receive()) show(s:receive(12)) show(s:receive()) show(s:send("x")) show(s:getreusedtimes()) show(s:setkeepalive()) show(s:close()) show(s:close())
end)
case("*a then setkeepalive", "abc", "C", function(s) show(s:receive("*a")) show(s:setkeepalive()) show(s:close()) end)
case("receiveany then close", "abc", "C", function(s) show(s:receiveany(10)) show(s:receiveany(10)) show(s:send("x")) show(s:close()) end)
case("receiveuntil then close", "abc", "C", function(s) local r = s:receiveuntil("x") show(r()) show(r()) show(s:receive()) show(s:close()) end)
case("connect again", "abc", "N", function(s) show(s:receive(1)) show(s:connect("127.0.0.1", PORT)) show(s:getreusedtimes()) show(s:receive(1)) end)
case("setkeepalive after a timeout", "", "N", function(s) show(s:receive(1)) show(s:setkeepalive()) end)
case("closed socket", "", "N", function(s)
  s:close()
  show(s:send("x")) show(s:receive()) show(s:receiveany(1)) show(s:receiveuntil("x")()) show(s:close()) show(s:setkeepalive()) show(s:getreusedtimes())
  show(s:setoption("keepalive", true)) show(s:sslhandshake())
end)
case("connect errors", "", "N", function(s)
  show(s:connect("127.0.0.1", 1)) show(s:connect("127.0.0.1")) show(s:connect("127.0.0.1", 70000)) show(s:connect("127.0.0.1", "x"))
  show(pcall(s.connect, s, "127.0.0.1", 1, {pool_size = 0})) show(pcall(s.connect, s, "127.0.0.1", 1, {backlog = -1}))
  show(pcall(s.connect, s)) show(pcall(s.settimeout, s, -1)) show(pcall(s.settimeouts, s, 1, 2))
end)
`

// TestCosocketMatchesNginx runs cosocketCases under Debian's nginx-extras
// (lua-nginx-module 0.10.23) and under luaserve, against the same Go peer:
// the outputs must be identical, byte for byte.
func TestCosocketMatchesNginx(t *testing.T) {
	const nginxBin = "/usr/sbin/nginx"
	modules := []string{"/usr/share/nginx/modules/ndk_http_module.so", "/usr/share/nginx/modules/ngx_http_lua_module.so"}
	for _, f := range append([]string{nginxBin}, modules...) {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (apt-get install nginx-extras): %v", f, err)
		}
	}
	p := startPeer(t, func(p *sockPeer, c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || len(line) < 2 {
			return
		}
		data, err := hex.DecodeString(strings.TrimSpace(line[1:]))
		if err != nil {
			return
		}
		c.Write(data)
		if line[0] == 'N' {
			waitEOF(p, c)
		}
	})
	script := "local PORT = " + strconv.Itoa(p.port()) + "\n" + cosocketCases

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cases.lua"), []byte(script), 0o644))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := l.Addr().String()
	l.Close()
	tmp := filepath.Join(dir, "tmp")
	require.NoError(t, os.MkdirAll(tmp, 0o755))
	conf := fmt.Sprintf(`load_module %s;
load_module %s;
daemon off;
master_process off;
error_log %s/error.log error;
pid %s/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %s/body;
	proxy_temp_path %s/proxy;
	fastcgi_temp_path %s/fastcgi;
	uwsgi_temp_path %s/uwsgi;
	scgi_temp_path %s/scgi;
	server {
		listen %s;
		location = /t { content_by_lua_file %s/cases.lua; }
	}
}
`, modules[0], modules[1], dir, dir, tmp, tmp, tmp, tmp, tmp, listen, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644))
	cmd := exec.Command(nginxBin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	var want string
	deadline := time.Now().Add(10 * time.Second)
	client := &http.Client{Timeout: 60 * time.Second}
	for {
		resp, err := client.Get("http://" + listen + "/t")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, 200, resp.StatusCode, string(b))
			want = string(b)
			break
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %v\n%s", waitErr, stderr.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "nginx did not answer: %v", err)
		time.Sleep(20 * time.Millisecond)
	}
	require.Contains(t, want, "== connect errors\n")

	r := runSock(t, p.port(), cosocketCases, nil, 60*time.Second)
	require.NoError(t, r.err)
	assertSameLines(t, want, r.body)
}

// assertSameLines compares two long outputs and shows only the lines
// around the first difference.
func assertSameLines(t *testing.T, want, got string) {
	t.Helper()
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		if i < len(wl) && i < len(gl) && wl[i] == gl[i] {
			continue
		}
		lo := max(0, i-8)
		window := func(l []string) string { return strings.Join(l[min(lo, len(l)):min(i+4, len(l))], "\n") }
		assert.Equal(t, window(wl), window(gl), "first difference at line %d", i+1)
		return
	}
}
