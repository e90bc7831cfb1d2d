package engine

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// locName labels locations by a "set $name X" inside them.
func locName(l *Location) string {
	if l == nil {
		return "<nil>"
	}
	for _, s := range l.Sets {
		if s.Name == "name" {
			v, _ := s.Value.Static()
			return v
		}
	}
	return l.Modifier + l.Pattern
}

func serverOf(t *testing.T, body string) *Server {
	t.Helper()
	cfg := mustLoad(t, "http { server {\n"+body+"\n} }", nil)
	return cfg.HTTP.Servers[0]
}

func TestMatchNginxDocExample(t *testing.T) {
	// the table from nginx's "location" documentation
	s := serverOf(t, `
		location = / { set $name A; }
		location / { set $name B; }
		location /documents/ { set $name C; }
		location ^~ /images/ { set $name D; }
		location ~* \.(gif|jpg|jpeg)$ { set $name E; }
	`)
	tests := map[string]string{
		"/":                        "A",
		"/index.html":              "B",
		"/documents/document.html": "C",
		"/images/1.gif":            "D",
		"/documents/1.jpg":         "E",
		"/DOCUMENTS/1.JPG":         "E",
		"/documents":               "B",
	}
	for path, want := range tests {
		assert.Equal(t, want, locName(s.Match([]byte(path), nil)), path)
	}
}

func TestMatchOrder(t *testing.T) {
	s := serverOf(t, `
		location = /exact { set $name exact; }
		location /exact { set $name exact-prefix; }
		location /a { set $name a; }
		location /a/b { set $name ab; }
		location ^~ /a/b/c { set $name abc-noregex; }
		location ~ \.php$ { set $name php; }
		location ~ ^/a/b/.*\.php$ { set $name ab-php-later; }
		location /n/ {
			set $name n;
			location /n/deep/ { set $name n-deep; }
			location ~ \.txt$ { set $name n-txt; }
			location ^~ /n/stop/ { set $name n-stop; }
			location = /n/x { set $name n-exact; }
		}
		location ~ ^/r/(\w+) {
			set $name r;
			location ~ ^/r/inner { set $name r-inner; }
			location /r/pre { set $name r-prefix; }
		}
		location ~* ^/CASE$ { set $name case; }
		location ~ ^/Case2$ { set $name case2; }
	`)
	tests := []struct{ path, want string }{
		{"/exact", "exact"},
		{"/exactly", "exact-prefix"},
		{"/a", "a"},
		{"/a/x", "a"},
		{"/a/b", "ab"},
		{"/a/bx", "ab"},
		{"/a/b/c", "abc-noregex"},
		{"/a/b/c/x.php", "abc-noregex"},
		{"/a/b/x.php", "php"}, // first regex in config order wins, not the most specific
		{"/x.php", "php"},
		{"/zzz", "<nil>"},
		{"", "<nil>"},
		{"/n/", "n"},
		{"/n/deep/y", "n-deep"},
		{"/n/deep/y.txt", "n-txt"}, // nested regex of the longest prefix
		{"/n/y.txt", "n-txt"},
		{"/n/y.php", "php"}, // nested regexes first, then the server's
		{"/n/x", "n-exact"}, // nested exact match
		{"/n/stop/y.txt", "n-stop"},
		{"/r/abc", "r"},
		{"/r/inner", "r-inner"},
		{"/r/pre", "r-prefix"}, // locations nested in a regex location are searched too
		{"/case", "case"},
		{"/Case2", "case2"},
		{"/case2", "<nil>"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, locName(s.Match([]byte(tt.path), nil)), tt.path)
	}
}

func TestMatchNestedNoregexQuirk(t *testing.T) {
	// nginx only honours "^~" of the prefix found at the level being
	// searched: a nested "^~" skips nested regexes, not outer ones
	s := serverOf(t, `
		location /n/ {
			set $name n;
			location ^~ /n/stop/ { set $name n-stop; }
		}
		location ~ \.php$ { set $name php; }
	`)
	assert.Equal(t, "php", locName(s.Match([]byte("/n/stop/x.php"), nil)))
	assert.Equal(t, "n-stop", locName(s.Match([]byte("/n/stop/x.txt"), nil)))
}

func TestMatchCaptures(t *testing.T) {
	s := serverOf(t, `
		location ~ ^/u/(\d+)/(?<action>\w+)$ { set $name u; }
		location ~ ^/opt/(a)?(b)$ { set $name opt; }
		location ~ ^/(?P<first>[^/]+)/(.*)$ {
			set $name generic;
			location ~ ^/inner/(x+)$ { set $name inner; }
		}
		location /plain { set $name plain; }
	`)
	var caps Captures
	path := []byte("/u/42/edit")
	l := s.Match(path, &caps)
	assert.Equal(t, "u", locName(l))
	assert.Equal(t, 3, caps.Len())
	assert.Equal(t, "/u/42/edit", string(caps.Group(path, 0)))
	assert.Equal(t, "42", string(caps.Group(path, 1)))
	assert.Equal(t, "edit", string(caps.Group(path, 2)))
	assert.Nil(t, caps.Group(path, 3))
	v, ok := caps.Lookup(path, "action")
	assert.True(t, ok)
	assert.Equal(t, "edit", string(v))
	v, ok = caps.Lookup(path, "1")
	assert.True(t, ok)
	assert.Equal(t, "42", string(v))
	_, ok = caps.Lookup(path, "7")
	assert.False(t, ok)
	_, ok = caps.Lookup(path, "nope")
	assert.False(t, ok)

	path = []byte("/opt/b")
	assert.Equal(t, "opt", locName(s.Match(path, &caps)))
	assert.Nil(t, caps.Group(path, 1), "a group that did not take part is empty")
	assert.Equal(t, "b", string(caps.Group(path, 2)))

	path = []byte("/inner/xxx")
	assert.Equal(t, "inner", locName(s.Match(path, &caps)))
	assert.Equal(t, "xxx", string(caps.Group(path, 1)), "the nested regex's captures win")
	_, ok = caps.Lookup(path, "first")
	assert.False(t, ok)

	path = []byte("/inner/yyy")
	assert.Equal(t, "generic", locName(s.Match(path, &caps)))
	v, _ = caps.Lookup(path, "first")
	assert.Equal(t, "inner", string(v))
	assert.Equal(t, "yyy", string(caps.Group(path, 2)))

	path = []byte("/plain")
	assert.Equal(t, "plain", locName(s.Match(path, &caps)))
	assert.Equal(t, 0, caps.Len(), "a prefix match leaves no captures")

	// template expansion with captures, the way content_by_lua_file uses it
	tp := mustTemplate(t, "scripts/$1-${action}.lua")
	path = []byte("/u/7/view")
	s.Match(path, &caps)
	got := tp.Append(nil, func(name string) []byte { v, _ := caps.Lookup(path, name); return v })
	assert.Equal(t, "scripts/7-view.lua", string(got))
}

// TestMatcherAgainstStdlib checks the backtracker against package regexp on
// captures, anchors, classes, case folding and UTF-8.
func TestMatcherAgainstStdlib(t *testing.T) {
	exprs := []string{
		`^/u/(\d+)/(\w+)$`, `\.(gif|jpg|jpeg)$`, `(?i)\.(GIF|jpg)$`, `(a*)(a*)`, `(a|ab)(c|bcd)(d*)`,
		`^/(.*)/(.*)$`, `\bfoo\b`, `x*`, `(?:(\w)(\w))+`, `^$`, `é+(.)`, `[^/]+$`, `(?s)a.b`, `a.b`,
		`(?m)^b`, `(a)|(b)`, `^/api/(?<ver>v\d+)/`, `(((((((((((((((((x)))))))))))))))))`, `a{2,3}?`, `\B`, `(?U)a+`,
	}
	inputs := []string{"", "/", "/u/42/edit", "/x.gif", "/X.GIF", "aaa", "abcd", "/a/b/c", "foo bar", "xfoo",
		"ééx", "a\nb", "ab", "b", "/api/v2/x", "xxxxxxxxx", "aaaa", "/x.jpeg", "\xff\xfe", "日本/語"}
	for _, e := range exprs {
		std := regexp.MustCompile(e)
		m, err := newMatcher(e)
		require.NoError(t, err, e)
		for _, in := range inputs {
			want := std.FindSubmatchIndex([]byte(in))
			var caps Captures
			ok := m.match([]byte(in), &caps)
			require.Equal(t, want != nil, ok, "%q on %q", e, in)
			assert.Equal(t, want != nil, m.match([]byte(in), nil))
			if want == nil {
				continue
			}
			n := min(len(want), 2*maxCaptures)
			got := make([]int, n)
			copy(got, caps.idx[:n])
			assert.Equal(t, want[:n], got, "%q on %q", e, in)
		}
	}
}

func FuzzMatcher(f *testing.F) {
	f.Add(`^/(\w+)/(.*)$`, "/abc/def")
	f.Add(`(?i)\.(gif|jpg)$`, "/x.GIF")
	f.Add(`(a|ab)(c|bcd)(d*)`, "abcd")
	f.Fuzz(func(t *testing.T, expr, in string) {
		std, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		m, err := newMatcher(expr)
		if err != nil {
			t.Fatalf("stdlib compiles %q, matcher does not: %v", expr, err)
		}
		want := std.FindSubmatchIndex([]byte(in))
		var caps Captures
		if ok := m.match([]byte(in), &caps); ok != (want != nil) {
			t.Fatalf("%q on %q: match %v, stdlib %v", expr, in, ok, want)
		}
		if want == nil {
			return
		}
		for i := 0; i < min(len(want), 2*maxCaptures); i++ {
			if caps.idx[i] != want[i] {
				t.Fatalf("%q on %q: caps %v, stdlib %v", expr, in, caps.idx[:len(want)], want)
			}
		}
	})
}

func TestRouterServer(t *testing.T) {
	cfg := mustLoad(t, `http {
		server { listen 8080; server_name first.com; set $name first; }
		server { listen 8080; server_name example.com www.example.com; set $name exact; }
		server { listen 8080; server_name *.example.com; set $name lead-short; }
		server { listen 8080; server_name *.a.example.com; set $name lead-long; }
		server { listen 8080; server_name www.example.*; set $name trail-short; }
		server { listen 8080; server_name www.example.co.*; set $name trail-long; }
		server { listen 8080; server_name ~^api\d+\.example\.net$ ~^(?<x>.+)\.regex\.org$; set $name regex1; }
		server { listen 8080; server_name ~\.net$; set $name regex2; }
		server { listen 8080; server_name .dot.org; set $name dot; }
		server { listen 8080; server_name ""; set $name empty; }
		server { listen 8080; server_name example.com; set $name duplicate-ignored; }
		server { listen 127.0.0.1:9090; server_name one.com; set $name nine-one; }
		server { listen 127.0.0.1:9090 default_server; server_name two.com; set $name nine-default; }
		server { listen unix:/tmp/x.sock; server_name sock.com; set $name sock; }
	}`, nil)
	require.Len(t, cfg.Warnings, 1)
	assert.Equal(t, `conflicting server name "example.com" on :8080, ignored`, cfg.Warnings[0].Msg)
	assert.Equal(t, 12, cfg.Warnings[0].Line)
	r := NewRouter(cfg.HTTP)
	name := func(s *Server) string {
		if s == nil {
			return "<nil>"
		}
		return locName(s.Loc)
	}
	tests := []struct{ addr, host, want string }{
		{":8080", "example.com", "exact"},
		{":8080", "EXAMPLE.com", "exact"},
		{":8080", "example.com:8080", "exact"},
		{":8080", "example.com.", "exact"},
		{":8080", "www.example.com", "exact"},
		{":8080", "x.example.com", "lead-short"},
		{":8080", "y.x.example.com", "lead-short"},
		{":8080", "b.a.example.com", "lead-long"},
		{":8080", "a.example.com", "lead-short"},
		{":8080", "www.example.org", "trail-short"},
		{":8080", "www.example.co.uk", "trail-long"},
		{":8080", "api12.example.net", "regex1"},
		{":8080", "foo.regex.org", "regex1"},
		{":8080", "other.net", "regex2"},
		{":8080", "dot.org", "dot"},
		{":8080", "w.dot.org", "dot"},
		{":8080", "", "empty"},
		{":8080", "unknown.test", "first"},
		{":8080", "[::1]:8080", "first"},
		{":8080", strings.Repeat("a", 300), "first"},
		{"10.0.0.1:8080", "example.com", "exact"}, // actual socket address falls back to the wildcard listen
		{"127.0.0.1:9090", "one.com", "nine-one"},
		{"127.0.0.1:9090", "nobody.com", "nine-default"},
		{"127.0.0.1:9090", "example.com", "nine-default"},
		{"/tmp/x.sock", "", "sock"},
		{"10.0.0.1:1", "example.com", "first"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, name(r.Server(tt.addr, []byte(tt.host))), "%s %s", tt.addr, tt.host)
	}
	assert.Equal(t, []Listen{
		{Network: "tcp", Addr: ":8080", File: cfg.File, Line: 2},
		{Network: "tcp", Addr: "127.0.0.1:9090", File: cfg.File, Line: 13},
		{Network: "unix", Addr: "/tmp/x.sock", File: cfg.File, Line: 15},
	}, r.Listens())

	empty := NewRouter(nil)
	assert.Nil(t, empty.Server(":80", []byte("x")))
	assert.Empty(t, empty.Listens())
}

func TestRouterZeroAllocs(t *testing.T) {
	cfg := mustLoad(t, `http {
		server { listen 8080; server_name example.com; }
		server { listen 8080; server_name *.example.org www.example.*; }
		server { listen 8080; server_name ~^api\d+\.example\.net$;
			location = / {}
			location / {}
			location /documents/ { location ~ \.pdf$ {} }
			location ^~ /images/ {}
			location ~* \.(gif|jpg|jpeg)$ {}
			location ~ ^/u/(\d+)/(?<action>\w+)$ {}
		}
	}`, nil)
	r := NewRouter(cfg.HTTP)
	for _, host := range []string{"example.com", "WWW.Example.Org:8080", "www.example.net", "api7.example.net", "none"} {
		h := []byte(host)
		assert.Zero(t, testing.AllocsPerRun(100, func() { r.Server(":8080", h) }), host)
	}
	s := cfg.HTTP.Servers[2]
	var caps Captures
	for _, path := range []string{"/", "/index.html", "/documents/a.pdf", "/images/1.gif", "/documents/1.jpg", "/u/42/edit"} {
		p := []byte(path)
		assert.Zero(t, testing.AllocsPerRun(100, func() { s.Match(p, &caps) }), path)
	}
}

func benchServer(b *testing.B) *Server {
	var sb strings.Builder
	sb.WriteString("location = / {}\nlocation / {}\nlocation ^~ /images/ {}\nlocation ~* \\.(gif|jpg|jpeg)$ {}\n")
	for i := range 20 {
		fmt.Fprintf(&sb, "location /app%d/ { location ~ ^/app%d/(\\w+)/(\\d+)$ {} }\n", i, i)
	}
	sb.WriteString("location ~ ^/u/(\\d+)/(?<action>\\w+)$ {}\n")
	cfg, err := loadBench(b.TempDir(), "http { server {\n"+sb.String()+"} }")
	if err != nil {
		b.Fatal(err)
	}
	return cfg.HTTP.Servers[0]
}

func loadBench(prefix, conf string) (*Config, error) {
	if err := os.MkdirAll(prefix+"/conf", 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(prefix+"/conf/nginx.conf", []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return Load(prefix, "conf/nginx.conf")
}

func BenchmarkMatch(b *testing.B) {
	s := benchServer(b)
	for _, path := range []string{"/", "/index.html", "/images/a/b/c.gif", "/app17/users/42", "/u/42/edit", "/app3/x.jpg"} {
		b.Run(path, func(b *testing.B) {
			p := []byte(path)
			var caps Captures
			b.ReportAllocs()
			for b.Loop() {
				s.Match(p, &caps)
			}
		})
	}
}

func BenchmarkServer(b *testing.B) {
	cfg, err := loadBench(b.TempDir(), `http {
		server { listen 80; server_name example.com; }
		server { listen 80; server_name *.example.org; }
		server { listen 80; server_name ~^api\d+\.example\.net$; }
	}`)
	if err != nil {
		b.Fatal(err)
	}
	r := NewRouter(cfg.HTTP)
	for _, host := range []string{"example.com", "a.b.example.org", "api7.example.net", "unknown.test"} {
		b.Run(host, func(b *testing.B) {
			h := []byte(host)
			b.ReportAllocs()
			for b.Loop() {
				r.Server(":80", h)
			}
		})
	}
}

func TestMatcherLongInput(t *testing.T) {
	// inputs beyond the backtracker's bitmap go to package regexp
	expr := `^/(\w+)/(.*)\.(lua|txt)$`
	m, err := newMatcher(expr)
	require.NoError(t, err)
	in := []byte("/abc/" + strings.Repeat("x", maxBacktrackBits/len(m.prog.Inst)) + ".lua")
	_, done := m.backtrack(in, nil)
	require.False(t, done)
	var caps Captures
	require.True(t, m.match(in, &caps))
	assert.Equal(t, "abc", string(caps.Group(in, 1)))
	assert.Equal(t, "lua", string(caps.Group(in, 3)))
	assert.False(t, m.match(in[:len(in)-1], nil))
}

func TestRouterOverlappingListens(t *testing.T) {
	cfg := mustLoad(t, `http {
		server { listen 7070; listen [::]:7070; server_name any.com; set $name wild; }
		server { listen [::]:7070; server_name v6.com; set $name v6; }
		server { listen 127.0.0.1:7070; server_name local.com; set $name local; }
		server { listen 127.0.0.1:7070; server_name other.com; set $name local2; }
	}`, nil)
	r := NewRouter(cfg.HTTP)
	assert.Equal(t, []Listen{{Network: "tcp", Addr: ":7070", File: cfg.File, Line: 2}}, r.Listens(),
		"one wildcard listener covers both families and the specific address")
	tests := []struct{ addr, host, want string }{
		{":7070", "any.com", "wild"},
		{":7070", "v6.com", "v6"},
		{"[::]:7070", "v6.com", "v6"},
		{"[::1]:7070", "x", "wild"},
		{"10.1.1.1:7070", "local.com", "wild"},
		{"127.0.0.1:7070", "any.com", "local"},
		{"127.0.0.1:7070", "other.com", "local2"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, locName(r.Server(tt.addr, []byte(tt.host)).Loc), "%s %s", tt.addr, tt.host)
	}
}

func ExampleServer_Match() {
	prefix, err := os.MkdirTemp("", "luaserve-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(prefix)
	cfg, err := loadBench(prefix, `http { server {
		listen 8080;
		location = / { return 200 "home"; }
		location / { }
		location ~ ^/api/(?<ver>v\d+)/(\w+)$ { content_by_lua_file api/$ver/$2.lua; }
	} }`)
	if err != nil {
		panic(err)
	}
	r := NewRouter(cfg.HTTP)
	srv := r.Server("127.0.0.1:8080", []byte("example.com"))
	path := []byte("/api/v2/users")
	var caps Captures
	loc := srv.Match(path, &caps)
	file, _ := loc.Content.AppendPath(nil, func(name string) []byte {
		v, _ := caps.Lookup(path, name)
		return v
	})
	fmt.Println(loc.Modifier, loc.Pattern)
	fmt.Println(strings.TrimPrefix(string(file), prefix))
	// Output:
	// ~ ^/api/(?<ver>v\d+)/(\w+)$
	// /api/v2/users.lua
}
