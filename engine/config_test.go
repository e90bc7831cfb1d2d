package engine

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writePrefix lays out a prefix directory: conf/nginx.conf holds conf, files
// are written relative to the prefix.
func writePrefix(t *testing.T, conf string, files map[string]string) string {
	t.Helper()
	prefix := t.TempDir()
	files2 := map[string]string{"conf/nginx.conf": conf}
	for k, v := range files {
		files2[k] = v
	}
	for name, body := range files2 {
		p := filepath.Join(prefix, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return prefix
}

func load(t *testing.T, conf string, files map[string]string) (*Config, string, error) {
	t.Helper()
	prefix := writePrefix(t, conf, files)
	cfg, err := Load(prefix, "conf/nginx.conf")
	return cfg, prefix, err
}

func mustLoad(t *testing.T, conf string, files map[string]string) *Config {
	t.Helper()
	cfg, _, err := load(t, conf, files)
	require.NoError(t, err)
	return cfg
}

func TestLoadErrors(t *testing.T) {
	srv := func(s string) string { return "http {\nserver {\n" + s + "\n}\n}\n" }
	loc := func(s string) string { return srv("location / {\n" + s + "\n}") }
	tests := []struct {
		name, conf string
		files      map[string]string
		want       string // "/p" stands for the prefix
	}{
		{"unknown", "foo bar;", nil, `unknown directive "foo" in /p/conf/nginx.conf:1`},
		{"unknown in location", loc("proxy_pass http://x;"), nil, `unknown directive "proxy_pass" in /p/conf/nginx.conf:4`},
		{"not allowed here", "content_by_lua_file x.lua;", nil, `"content_by_lua_file" directive is not allowed here in /p/conf/nginx.conf:1`},
		{"set in http", "http { set $a 1; }", nil, `"set" directive is not allowed here in /p/conf/nginx.conf:1`},
		{"init_by_lua in server", srv("init_by_lua_block { }"), nil, `"init_by_lua_block" directive is not allowed here in /p/conf/nginx.conf:3`},
		{"content in server", srv("content_by_lua 'x=1';"), nil, `"content_by_lua" directive is not allowed here in /p/conf/nginx.conf:3`},
		{"worker_connections in main", "worker_connections 10;", nil, `"worker_connections" directive is not allowed here in /p/conf/nginx.conf:1`},
		{"server in main", "server {}", nil, `"server" directive is not allowed here in /p/conf/nginx.conf:1`},
		{"listen arity", srv("listen;"), nil, `invalid number of arguments in "listen" directive in /p/conf/nginx.conf:3`},
		{"set arity", loc("set $a;"), nil, `invalid number of arguments in "set" directive in /p/conf/nginx.conf:4`},
		{"http with args", "http x {}", nil, `invalid number of arguments in "http" directive in /p/conf/nginx.conf:1`},
		{"lua block with args", loc("content_by_lua_block x { }"), nil, `invalid number of arguments in "content_by_lua_block" directive in /p/conf/nginx.conf:4`},
		{"no opening brace", "events;", nil, `directive "events" has no opening "{" in /p/conf/nginx.conf:1`},
		{"lua block without block", loc("content_by_lua_block;"), nil, `directive "content_by_lua_block" has no opening "{" in /p/conf/nginx.conf:4`},
		{"not terminated", "pid x { }", nil, `directive "pid" is not terminated by ";" in /p/conf/nginx.conf:1`},
		{"duplicate http", "http {}\nhttp {}", nil, `"http" directive is duplicate in /p/conf/nginx.conf:2`},
		{"duplicate root", "http { root a; root b; }", nil, `"root" directive is duplicate in /p/conf/nginx.conf:1`},
		{"duplicate pid", "pid a;\npid b;", nil, `"pid" directive is duplicate in /p/conf/nginx.conf:2`},
		{"duplicate content", loc("content_by_lua_block { }\ncontent_by_lua 'x=1';"), nil, `"content_by_lua" directive is duplicate in /p/conf/nginx.conf:5`},
		{"duplicate location", srv("location /a {}\nlocation ^~ /a {}"), nil, `duplicate location "/a" in /p/conf/nginx.conf:4`},
		{"duplicate exact location", srv("location = /a {}\nlocation =/a {}"), nil, `duplicate location "/a" in /p/conf/nginx.conf:4`},
		{"duplicate named location", srv("location @a {}\nlocation @a {}"), nil, `duplicate location "@a" in /p/conf/nginx.conf:4`},
		{"bad flag", "daemon maybe;", nil, `invalid value "maybe" in "daemon" directive, it must be "on" or "off" in /p/conf/nginx.conf:1`},
		{"bad size", "http { client_max_body_size 1x; }", nil, `"client_max_body_size" directive invalid value in /p/conf/nginx.conf:1`},
		{"bad time", "http { lua_request_timeout soon; }", nil, `"lua_request_timeout" directive invalid value in /p/conf/nginx.conf:1`},
		{"bad keepalive", "http { keepalive_timeout x; }", nil, `invalid value "x" in "keepalive_timeout" directive in /p/conf/nginx.conf:1`},
		{"bad number", "http { lua_vm_pool_size many; }", nil, `"lua_vm_pool_size" directive invalid number in /p/conf/nginx.conf:1`},
		{"bad port", srv("listen 99999;"), nil, `invalid port in "99999" of the "listen" directive in /p/conf/nginx.conf:3`},
		{"bad host port", srv("listen 127.0.0.1:x;"), nil, `invalid port in "127.0.0.1:x" of the "listen" directive in /p/conf/nginx.conf:3`},
		{"bad listen param", srv("listen 80 fast;"), nil, `invalid parameter "fast" in /p/conf/nginx.conf:3`},
		{"ssl listen", srv("listen 443 ssl;"), nil, `the "ssl" parameter of the "listen" directive is not supported by luaserve in /p/conf/nginx.conf:3`},
		{"duplicate listen", srv("listen 80;\nlisten *:80;"), nil, `duplicate listen *:80 in /p/conf/nginx.conf:4`},
		{"duplicate default server", "http {\nserver { listen 80 default_server; }\nserver { listen 80 default_server; }\n}", nil,
			`a duplicate default server for :80 in /p/conf/nginx.conf:3`},
		{"bad wildcard", srv("server_name w*w.example.com;"), nil, `invalid server name or wildcard "w*w.example.com" in /p/conf/nginx.conf:3`},
		{"bad server regex", srv(`server_name ~^(?=x)$;`), nil,
			"server_name regex \"^(?=x)$\" cannot be compiled by Go's RE2 engine: error parsing regexp: invalid or unsupported Perl syntax: `(?=` in /p/conf/nginx.conf:3"},
		{"re2 lookahead", srv(`location ~ ^/(?!api) {}`), nil,
			"location regex \"^/(?!api)\" cannot be compiled by Go's RE2 engine: error parsing regexp: invalid or unsupported Perl syntax: `(?!` in /p/conf/nginx.conf:3"},
		{"bad location modifier", srv("location ~~ /a {}"), nil, `invalid location modifier "~~" in /p/conf/nginx.conf:3`},
		{"inside exact", srv("location = /a {\nlocation /a/b {}\n}"), nil, `location "/a/b" cannot be inside the exact location "/a" in /p/conf/nginx.conf:4`},
		{"outside parent", srv("location /a {\nlocation /b {}\n}"), nil, `location "/b" is outside location "/a" in /p/conf/nginx.conf:4`},
		{"named nested", srv("location /a {\nlocation @n {}\n}"), nil, `named location "@n" can be on the server level only in /p/conf/nginx.conf:4`},
		{"inside named", srv("location @n {\nlocation /x {}\n}"), nil, `location "/x" cannot be inside the named location "@n" in /p/conf/nginx.conf:4`},
		{"bad return", loc("return abc;"), nil, `invalid return code "abc" in /p/conf/nginx.conf:4`},
		{"bad return code", loc("return 1000 x;"), nil, `invalid return code "1000" in /p/conf/nginx.conf:4`},
		{"bad set name", loc("set a 1;"), nil, `invalid variable name "a" in /p/conf/nginx.conf:4`},
		{"bad set value", loc("set $a ${b;"), nil, `the closing bracket in "b" variable is missing in /p/conf/nginx.conf:4`},
		{"bad shared dict size", "http { lua_shared_dict d 1; }", nil, `invalid lua shared dict size "1" in /p/conf/nginx.conf:1`},
		{"duplicate shared dict", "http { lua_shared_dict d 1m; lua_shared_dict d 2m; }", nil, `lua_shared_dict "d" is already defined as "d" in /p/conf/nginx.conf:1`},
		{"bad log level", "error_log logs/e.log loud;", nil, `invalid log level "loud" in /p/conf/nginx.conf:1`},
		{"syslog", "error_log syslog:server=x;", nil, `"syslog:server=x" is not supported by luaserve; use a file or stderr in /p/conf/nginx.conf:1`},
		{"bad log format", "http { access_log logs/a.log main; }", nil, `unknown log format "main" in /p/conf/nginx.conf:1`},
		{"bad embedded addr", "memcached_embedded localhost;", nil, `invalid address "localhost" in "memcached_embedded" directive in /p/conf/nginx.conf:1`},
		{"bad embedded size", "memcached_embedded 127.0.0.1:11211 big;", nil, `invalid size "big" in "memcached_embedded" directive in /p/conf/nginx.conf:1`},
		{"include missing", "include missing.conf;", nil, `open() "/p/conf/missing.conf" failed (2: No such file or directory) in /p/conf/nginx.conf:1`},
		{"include arity", "include a b;", nil, `invalid number of arguments in "include" directive in /p/conf/nginx.conf:1`},
		{"error in included file", "http {\ninclude sites/*.conf;\n}", map[string]string{"conf/sites/a.conf": "server {\nlisten 80;\n}", "conf/sites/b.conf": "server {\n\nbogus;\n}"},
			`unknown directive "bogus" in /p/conf/sites/b.conf:3`},
		{"parse error in included file", "include x.conf;", map[string]string{"conf/x.conf": "events {"}, `unexpected end of file, expecting "}" in /p/conf/x.conf:1`},
		{"include cycle", "include nginx.conf;", nil, `include nesting is deeper than 32 (an include cycle?) in /p/conf/nginx.conf:1`},
		{"lua syntax error block", loc("content_by_lua_block {\n  local x = \n}"), nil,
			`failed to load inlined Lua code: content_by_lua(nginx.conf:4):3: syntax error near '<eof>' in /p/conf/nginx.conf:4`},
		{"lua syntax error mid block", loc("rewrite_by_lua_block {\nx = = 1\n}"), nil,
			`failed to load inlined Lua code: rewrite_by_lua(nginx.conf:4):2: syntax error near '=' in /p/conf/nginx.conf:4`},
		{"lua syntax error string", "http { init_by_lua 'return 1 x = 2'; }", nil,
			`failed to load inlined Lua code: init_by_lua(nginx.conf:1):1: syntax error near 'x' in /p/conf/nginx.conf:1`},
		{"lua compile error", "http { init_worker_by_lua_block { goto nowhere } }", nil,
			`failed to load inlined Lua code: compile error near line(2) init_worker_by_lua(nginx.conf:1): no visible label 'nowhere' for <goto> at line 1 in /p/conf/nginx.conf:1`},
		{"lua file missing", loc("content_by_lua_file lua/x.lua;"), nil,
			`failed to load external Lua file "/p/lua/x.lua": cannot open /p/lua/x.lua in /p/conf/nginx.conf:4`},
		{"lua file syntax error", loc("content_by_lua_file x.lua;"), map[string]string{"x.lua": "ngx.say(\n"},
			`failed to load external Lua file "/p/x.lua": /p/x.lua:2: syntax error near '<eof>' in /p/conf/nginx.conf:4`},
		{"lua file escapes prefix", loc("content_by_lua_file ../x.lua;"), nil, `Lua file path "../x.lua" escapes the prefix in /p/conf/nginx.conf:4`},
		{"lua file template escapes prefix", srv("location ~ ^/(\\w+)$ { content_by_lua_file ../$1.lua; }"), nil,
			`Lua file path "../$1.lua" escapes the prefix in /p/conf/nginx.conf:3`},
		{"types nested block", "http { types { a {} } }", nil, `unexpected "{" in /p/conf/nginx.conf:1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, prefix, err := load(t, tt.conf, tt.files)
			require.Error(t, err)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.want, strings.ReplaceAll(err.Error(), prefix, "/p"))
		})
	}
}

func TestLoadErrorLogTwice(t *testing.T) {
	cfg, prefix, err := load(t, "error_log logs/a.log info;\nerror_log logs/b.log;\nhttp { server { error_log logs/c.log; } }", nil)
	require.NoError(t, err)
	assert.Equal(t, LogTarget{Path: prefix + "/logs/a.log", Level: "info"}, cfg.ErrorLog)
	require.Len(t, cfg.Warnings, 2)
	assert.Equal(t, `only the first "error_log" is used; this one is ignored`, cfg.Warnings[0].Msg)
	assert.Equal(t, `"error_log" is only honoured in the main context; this one is ignored`, cfg.Warnings[1].Msg)
	assert.Equal(t, 3, cfg.Warnings[1].Line)
}

func TestLoadMissingConfig(t *testing.T) {
	prefix := t.TempDir()
	_, err := Load(prefix, "conf/nginx.conf")
	require.Error(t, err)
	assert.Equal(t, `open() "/p/conf/nginx.conf" failed (2: No such file or directory)`, strings.ReplaceAll(err.Error(), prefix, "/p"))
}

func TestLoadDefaults(t *testing.T) {
	cfg, prefix, err := load(t, "http { server { location / { content_by_lua_block { ngx.say('hi') } } } }", nil)
	require.NoError(t, err)
	assert.Equal(t, prefix, cfg.Prefix)
	assert.Equal(t, filepath.Join(prefix, "conf/nginx.conf"), cfg.File)
	assert.Equal(t, []string{cfg.File}, cfg.Files)
	assert.Equal(t, LogTarget{Path: prefix + "/logs/error.log", Level: "error"}, cfg.ErrorLog)
	assert.Equal(t, prefix+"/logs/nginx.pid", cfg.PidFile)
	assert.False(t, cfg.Daemon)
	assert.Nil(t, cfg.Embedded)
	assert.Empty(t, cfg.Warnings)
	h := cfg.HTTP
	require.NotNil(t, h)
	assert.True(t, h.HotReload)
	assert.Zero(t, h.VMPoolSize)
	assert.True(t, h.Socket.LogErrors)
	assert.Equal(t, prefix+"/?.lua;"+prefix+"/?/init.lua;"+prefix+"/lua/?.lua;"+prefix+"/lua/?/init.lua;"+prefix+"/lualib/?.lua;"+prefix+"/lualib/?/init.lua", h.LuaPackagePath)
	assert.Equal(t, "", h.LuaPackageCPath)
	require.Len(t, h.Servers, 1)
	s := h.Servers[0]
	assert.Equal(t, []Listen{{Network: "tcp", Addr: ":80", File: cfg.File, Line: 1}}, s.Listens)
	assert.Equal(t, []ServerName{{Kind: NameExact}}, s.Names)
	require.Len(t, s.Locations, 1)
	for _, l := range []*Location{s.Loc, s.Locations[0]} {
		root, ok := l.Root.Static()
		assert.True(t, ok)
		assert.Equal(t, prefix+"/html", root)
		assert.Equal(t, []string{"index.html"}, l.Index)
		assert.Equal(t, "text/plain", l.DefaultType)
		assert.Equal(t, int64(1<<20), l.ClientMaxBodySize)
		assert.Equal(t, &AccessLog{Path: prefix + "/logs/access.log", Format: "combined"}, l.AccessLog)
		assert.Equal(t, 75*time.Second, l.KeepaliveTimeout)
		assert.True(t, l.LuaCodeCache)
		assert.Equal(t, 30*time.Second, l.LuaRequestTimeout)
	}
	c := s.Locations[0].Content
	require.NotNil(t, c)
	assert.Equal(t, "content_by_lua(nginx.conf:1)", c.Name)
	assert.Equal(t, " ngx.say('hi') ", c.Code)
	assert.NotNil(t, c.Proto)
	assert.Nil(t, s.Loc.Content)
	assert.Nil(t, (&Config{}).HTTP)
}

func TestLoadFull(t *testing.T) {
	conf := `
user nobody;
worker_processes 4;
daemon on;
master_process off;
pid run/luaserve.pid;
error_log stderr warn;
env PATH;
env MODE=dev;
memcached_embedded 127.0.0.1:11311 16m;
events { worker_connections 1024; accept_mutex off; use epoll; }
http {
    include mime.types;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 10s 10s;
    client_max_body_size 10m;
    access_log logs/acc.log combined buffer=32k;
    root www;
    lua_package_path "$prefix/app/?.lua;lib/?.lua;;";
    lua_package_cpath "/usr/lib/?.so;";
    lua_shared_dict cache 10m;
    lua_shared_dict locks 100k;
    lua_code_cache off;
    lua_hot_reload off;
    lua_vm_pool_size 16;
    lua_request_timeout 5s;
    lua_socket_connect_timeout 500ms;
    lua_socket_send_timeout 2s;
    lua_socket_read_timeout 1m;
    lua_socket_pool_size 30;
    lua_socket_keepalive_timeout 60;
    lua_socket_log_errors off;
    resolver 127.0.0.1 valid=30s;
    init_by_lua_block { cjson = require "cjson" }
    init_worker_by_lua 'local x = 1';
    rewrite_by_lua_block { ngx.ctx.http = true }
    log_by_lua_block { }
    server {
        listen 127.0.0.1:8080 default_server reuseport backlog=511;
        listen unix:/tmp/luaserve.sock;
        listen 8081;
        server_name example.com *.example.org www.example.* .example.net "~^(?<sub>\w+)\.example\.io$";
        set $app demo;
        access_by_lua_block { ngx.ctx.server = true }
        lua_request_timeout 1500ms;
        location = / { return 200 "hello $app"; }
        location / {
            index index.htm default.htm;
            access_log off;
        }
        location ^~ /static/ { root /srv/static; default_type text/html; }
        location ~* \.(gif|jpg)$ { client_max_body_size 0; lua_code_cache on; }
        location /api/ {
            rewrite_by_lua_block { ngx.ctx.api = true }
            content_by_lua_file app/api.lua;
            location ~ ^/api/(?<ver>v\d+)/ { content_by_lua_file "app/$ver.lua"; }
            location /api/old/ { return 301 https://example.com/new; }
        }
        location ~ ^/s/(\w+)$ { content_by_lua_file scripts/$1.lua; keepalive_timeout 1h; }
        location @fallback { return 404; }
    }
}
`
	files := map[string]string{
		"conf/mime.types": "types {\n text/html html htm;\n image/gif GIF;\n}\n",
		"app/api.lua":     "ngx.say('api')\n",
	}
	cfg, prefix, err := load(t, conf, files)
	require.NoError(t, err)
	assert.Equal(t, []string{prefix + "/conf/nginx.conf", prefix + "/conf/mime.types"}, cfg.Files)
	assert.Equal(t, LogTarget{Path: "stderr", Level: "warn"}, cfg.ErrorLog)
	assert.Equal(t, prefix+"/run/luaserve.pid", cfg.PidFile)
	assert.True(t, cfg.Daemon)
	assert.Equal(t, []EnvVar{{Name: "PATH"}, {Name: "MODE", Value: "dev", HasValue: true}}, cfg.Env)
	require.NotNil(t, cfg.Embedded)
	assert.Equal(t, "127.0.0.1:11311", cfg.Embedded.Addr)
	assert.Equal(t, int64(16<<20), cfg.Embedded.Size)
	assert.Equal(t, 10, cfg.Embedded.Line)
	var warns []string
	for _, w := range cfg.Warnings {
		warns = append(warns, strings.ReplaceAll(w.String(), prefix, "/p"))
	}
	assert.Equal(t, []string{
		`"user" is ignored: luaserve does not switch users in /p/conf/nginx.conf:2`,
		`"worker_processes 4" is ignored: luaserve is one process; bound Lua concurrency with "lua_vm_pool_size" in /p/conf/nginx.conf:3`,
		`"daemon on" is ignored: luaserve never forks; run it under a supervisor in /p/conf/nginx.conf:4`,
		`access_log parameter "buffer=32k" is ignored in /p/conf/nginx.conf:18`,
		`lua_package_cpath is stored but C modules cannot be loaded by luaserve (gopher-lua) in /p/conf/nginx.conf:21`,
		`lua_code_cache is off; this will hurt performance in /p/conf/nginx.conf:24`,
	}, warns)

	h := cfg.HTTP
	assert.Equal(t, map[string]string{"html": "text/html", "htm": "text/html", "gif": "image/gif"}, h.Types)
	assert.Equal(t, prefix+"/app/?.lua;"+prefix+"/lib/?.lua;"+prefix+"/?.lua;"+prefix+"/?/init.lua;"+prefix+"/lua/?.lua;"+prefix+"/lua/?/init.lua;"+
		prefix+"/lualib/?.lua;"+prefix+"/lualib/?/init.lua", h.LuaPackagePath)
	assert.Equal(t, "/usr/lib/?.so", h.LuaPackageCPath)
	assert.Equal(t, []SharedDict{{"cache", 10 << 20}, {"locks", 100 << 10}}, h.SharedDicts)
	assert.False(t, h.HotReload)
	assert.Equal(t, 16, h.VMPoolSize)
	assert.Equal(t, SocketSettings{ConnectTimeout: 500 * time.Millisecond, SendTimeout: 2 * time.Second, ReadTimeout: time.Minute,
		PoolSize: 30, KeepaliveTimeout: time.Minute, LogErrors: false}, h.Socket)
	assert.Equal(t, []string{"127.0.0.1", "valid=30s"}, h.Resolver)
	require.NotNil(t, h.InitByLua)
	assert.Equal(t, "init_by_lua(nginx.conf:35)", h.InitByLua.Name)
	require.NotNil(t, h.InitWorkerByLua)
	assert.Equal(t, "local x = 1", h.InitWorkerByLua.Code)

	require.Len(t, h.Servers, 1)
	s := h.Servers[0]
	assert.Equal(t, []Listen{
		{Network: "tcp", Addr: "127.0.0.1:8080", DefaultServer: true, ReusePort: true, File: cfg.File, Line: 40},
		{Network: "unix", Addr: "/tmp/luaserve.sock", File: cfg.File, Line: 41},
		{Network: "tcp", Addr: ":8081", File: cfg.File, Line: 42},
	}, s.Listens)
	var names []string
	for _, n := range s.Names {
		names = append(names, string("EPTR"[n.Kind])+":"+n.Name)
	}
	assert.Equal(t, []string{"E:example.com", "P:.example.org", "T:www.example.", "E:example.net", "P:.example.net", `R:^(?<sub>\w+)\.example\.io$`}, names)

	// server level: inherits http, adds its own
	sl := s.Loc
	assert.Equal(t, []SetVar{{Name: "app", Value: mustTemplate(t, "demo")}}, sl.Sets)
	assert.Equal(t, "ngx.ctx.http = true", strings.TrimSpace(sl.Rewrite.Code))
	assert.Equal(t, "ngx.ctx.server = true", strings.TrimSpace(sl.Access.Code))
	assert.NotNil(t, sl.Log)
	assert.Equal(t, 1500*time.Millisecond, sl.LuaRequestTimeout)
	assert.False(t, sl.LuaCodeCache)
	assert.Equal(t, "application/octet-stream", sl.DefaultType)
	assert.Equal(t, 10*time.Second, sl.KeepaliveTimeout)
	assert.Equal(t, &AccessLog{Path: prefix + "/logs/acc.log", Format: "combined"}, sl.AccessLog)
	root, _ := sl.Root.Static()
	assert.Equal(t, prefix+"/www", root)

	byPat := map[string]*Location{}
	var walk func([]*Location)
	walk = func(ls []*Location) {
		for _, l := range ls {
			byPat[l.Modifier+l.Pattern] = l
			walk(l.Locations)
		}
	}
	walk(s.Locations)
	require.Len(t, s.Locations, 6)

	exact := byPat["=/"]
	require.NotNil(t, exact.Return)
	assert.Equal(t, 200, exact.Return.Code)
	assert.Equal(t, "hello $app", exact.Return.Text.String())
	assert.Equal(t, []SetVar(nil), exact.Sets, "set is not inherited: it runs at the level it is written")

	plain := byPat["/"]
	assert.Equal(t, []string{"index.htm", "default.htm"}, plain.Index)
	assert.Nil(t, plain.AccessLog)
	assert.Equal(t, sl.Access, plain.Access)

	static := byPat["^~/static/"]
	root, _ = static.Root.Static()
	assert.Equal(t, "/srv/static", root)
	assert.Equal(t, "text/html", static.DefaultType)

	img := byPat[`~*\.(gif|jpg)$`]
	require.NotNil(t, img.Regexp)
	assert.True(t, img.Regexp.MatchString("/A.GIF"))
	assert.Equal(t, int64(0), img.ClientMaxBodySize)
	assert.True(t, img.LuaCodeCache)

	api := byPat["/api/"]
	require.Len(t, api.Locations, 2)
	assert.Equal(t, "ngx.ctx.api = true", strings.TrimSpace(api.Rewrite.Code))
	require.NotNil(t, api.Content)
	assert.Equal(t, prefix+"/app/api.lua", api.Content.Name)
	assert.Equal(t, "ngx.say('api')\n", api.Content.Code)
	assert.NotNil(t, api.Content.Proto)
	p, ok := api.Content.Path.Static()
	assert.True(t, ok)
	assert.Equal(t, prefix+"/app/api.lua", p)

	ver := byPat[`~^/api/(?<ver>v\d+)/`]
	assert.Equal(t, api.Rewrite, ver.Rewrite, "nested locations inherit rewrite_by_lua")
	require.NotNil(t, ver.Content)
	assert.Nil(t, ver.Content.Proto, "a path with variables is compiled per request")
	assert.Equal(t, []string{"ver"}, ver.Content.Path.Vars())
	assert.Equal(t, 10*time.Second, ver.KeepaliveTimeout)

	old := byPat["/api/old/"]
	assert.Nil(t, old.Content, "content handlers are not inherited")
	assert.Equal(t, 301, old.Return.Code)

	scr := byPat[`~^/s/(\w+)$`]
	assert.Equal(t, time.Hour, scr.KeepaliveTimeout)
	assert.Equal(t, []string{"1"}, scr.Content.Path.Vars())

	fb := s.Named["@fallback"]
	require.NotNil(t, fb)
	assert.Equal(t, 404, fb.Return.Code)
	assert.Equal(t, fb, s.NamedLocation("@fallback"))
	assert.Nil(t, byPat["@@fallback"], "named locations are not in the matching tree")
}

func mustTemplate(t *testing.T, s string) *Template {
	t.Helper()
	tp, err := ParseTemplate(s)
	require.NoError(t, err)
	return tp
}

func TestLoadIncludes(t *testing.T) {
	// testdata/conf holds a config with a glob include; copy it under a prefix
	// so the relative paths resolve as they would for a real install.
	prefix := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(prefix, "conf"), os.DirFS("testdata/conf")))
	cfg, err := Load(prefix, "conf/nginx.conf")
	require.NoError(t, err)
	assert.Equal(t, []string{
		prefix + "/conf/nginx.conf",
		prefix + "/conf/sites/a.conf",
		prefix + "/conf/sites/b.conf",
		prefix + "/conf/lua.conf",
	}, cfg.Files)
	require.Len(t, cfg.HTTP.Servers, 2)
	assert.Equal(t, "a.example.com", cfg.HTTP.Servers[0].Names[0].Name)
	assert.Equal(t, "b.example.com", cfg.HTTP.Servers[1].Names[0].Name)
	l := cfg.HTTP.Servers[1].Locations[0]
	require.NotNil(t, l.Content)
	assert.Equal(t, "content_by_lua(lua.conf:2)", l.Content.Name)
	assert.Equal(t, prefix+"/conf/lua.conf", l.Content.File)

	// absolute config path, relative include of an empty glob
	cfg, err = Load(prefix, prefix+"/conf/nginx.conf")
	require.NoError(t, err)
	assert.Len(t, cfg.Files, 4)
}

func TestLuaChunkAppendPath(t *testing.T) {
	conf := `http { server {
		location ~ ^/s/(.*)$ { content_by_lua_file scripts/$1.lua; }
		location ~ ^/a/(.*)$ { content_by_lua_file /srv/app/handlers/$1.lua; }
		location ~ ^/v/(.*)$ { content_by_lua_file $1; }
		location /static { content_by_lua_file static.lua; }
	} }`
	cfg, prefix, err := load(t, conf, map[string]string{"static.lua": "return"})
	require.NoError(t, err)
	locs := cfg.HTTP.Servers[0].Locations
	tests := []struct {
		loc     int
		capture string
		want    string
		err     bool
	}{
		{0, "hello", prefix + "/scripts/hello.lua", false},
		{0, "a/b", prefix + "/scripts/a/b.lua", false},
		{0, "../x", prefix + "/x.lua", false},
		{0, "../../etc/passwd", "", true},
		{0, "x\x00y", "", true},
		{1, "users", "/srv/app/handlers/users.lua", false},
		{1, "../secret", "", true},
		{1, "a/../../handlers/b", "", true},
		{2, "rel/x.lua", prefix + "/rel/x.lua", false},
		{2, prefix + "/in.lua", prefix + "/in.lua", false},
		{2, "/etc/passwd", "", true},
		{2, prefix + "x/evil.lua", "", true},
		{3, "ignored", prefix + "/static.lua", false},
	}
	for _, tt := range tests {
		c := locs[tt.loc].Content
		lookup := func(name string) []byte {
			if name == "1" {
				return []byte(tt.capture)
			}
			return nil
		}
		got, err := c.AppendPath([]byte("keep:"), lookup)
		if tt.err {
			assert.ErrorIs(t, err, ErrPathEscapes, tt.capture)
			assert.Equal(t, "keep:", string(got))
			continue
		}
		require.NoError(t, err, tt.capture)
		assert.Equal(t, "keep:"+tt.want, string(got), tt.capture)
	}
}

func TestParseSizeTime(t *testing.T) {
	sizes := map[string]int64{"0": 0, "512": 512, "1k": 1024, "1K": 1024, "10m": 10 << 20, "2g": 2 << 30}
	for s, want := range sizes {
		got, ok := parseSize(s)
		assert.True(t, ok, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"", "k", "1x", "-1", "1.5m", "99999999999999999g"} {
		_, ok := parseSize(s)
		assert.False(t, ok, s)
	}
	times := map[string]time.Duration{"30": 30 * time.Second, "30s": 30 * time.Second, "500ms": 500 * time.Millisecond,
		"1m": time.Minute, "1h": time.Hour, "1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute,
		"1h 30m": 90 * time.Minute, "0": 0}
	for s, want := range times {
		got, ok := parseTime(s)
		assert.True(t, ok, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"", "s", "1x", "1.5s", "-1s", "1sm", "ms"} {
		_, ok := parseTime(s)
		assert.False(t, ok, s)
	}
}

func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"http { server { listen 80; server_name a *.b c.* ~d; location / { root html; } location ~ ^/(x)$ { content_by_lua_file $1.lua; } } }",
		"http { lua_shared_dict d 1m; init_by_lua_block { x = {} } server { location = / { return 200 'ok $uri'; set $a b; } } }",
		"events { worker_connections 1; } error_log logs/e.log info; env A=b; memcached_embedded 127.0.0.1:1 1m;",
		"http { include x/*.conf; types { text/html html; } access_log off; keepalive_timeout 5s; }",
		"http { server { location /a { location /a/b { location ~ c { } } } location @n { } } }",
	} {
		f.Add([]byte(s))
	}
	prefix := f.TempDir()
	file := filepath.Join(prefix, "conf", "nginx.conf")
	f.Fuzz(func(t *testing.T, src []byte) {
		if bytes.Contains(src, []byte("include")) {
			t.Skip("include could walk the real file system; unit tests cover it")
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			cfg, err := loadSource(prefix, file, src)
			if err != nil {
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Errorf("not a ConfigError: %v", err)
				}
				return
			}
			if cfg.HTTP != nil {
				r := NewRouter(cfg.HTTP)
				for _, s := range cfg.HTTP.Servers {
					r.Server(s.Listens[0].Addr, []byte("example.com"))
					var caps Captures
					s.Match([]byte("/a/b/c.lua"), &caps)
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("load hung on %q", src)
		}
	})
}

func TestListenForms(t *testing.T) {
	tests := map[string]Listen{
		"8080":                   {Network: "tcp", Addr: ":8080"},
		"*:80":                   {Network: "tcp", Addr: ":80"},
		"0.0.0.0:81":             {Network: "tcp", Addr: ":81"},
		"127.0.0.1":              {Network: "tcp", Addr: "127.0.0.1:80"},
		"localhost:8080":         {Network: "tcp", Addr: "localhost:8080"},
		"[::1]:8080":             {Network: "tcp", Addr: "[::1]:8080"},
		"[::1]":                  {Network: "tcp", Addr: "[::1]:80"},
		"[::]:80 ipv6only=on":    {Network: "tcp", Addr: "[::]:80"},
		"unix:/tmp/s.sock":       {Network: "unix", Addr: "/tmp/s.sock"},
		"80 default":             {Network: "tcp", Addr: ":80", DefaultServer: true},
		"80 backlog=10 deferred": {Network: "tcp", Addr: ":80"},
	}
	for in, want := range tests {
		cfg := mustLoad(t, "http { server { listen "+in+"; } }", nil)
		got := cfg.HTTP.Servers[0].Listens[0]
		got.File, got.Line = "", 0
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"0", "65536", "host:", "::1:80", "unix:"} {
		_, _, err := load(t, "http { server { listen "+in+"; } }", nil)
		assert.Error(t, err, in)
	}
}

func TestErrorStrings(t *testing.T) {
	assert.Equal(t, "boom", (&ConfigError{Msg: "boom"}).Error())
	assert.Equal(t, "boom in a.conf:3", (&ConfigError{File: "a.conf", Line: 3, Msg: "boom"}).Error())
	assert.Equal(t, "w", Warning{Msg: "w"}.String())
	assert.Equal(t, "w in a.conf:1", Warning{File: "a.conf", Line: 1, Msg: "w"}.String())
}
