package luabind

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"
)

// ngxtFixedClock is a Clock frozen at a given instant.
type ngxtFixedClock struct{ t time.Time }

func (c *ngxtFixedClock) Now() time.Time { return c.t }
func (c *ngxtFixedClock) Update()        {}

// ngxtAppendSay formats one ngx.say argument like lua-nginx-module: strings
// as they are, numbers as "%.14g", booleans, nil, and array tables
// flattened.
func ngxtAppendSay(b []byte, v lua.LValue) []byte {
	switch lv := v.(type) {
	case lua.LString:
		return append(b, lv...)
	case lua.LNumber:
		return append(b, ngxFormatNumber(float64(lv))...)
	case lua.LBool:
		if lv {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case *lua.LNilType:
		return append(b, "nil"...)
	case *lua.LTable:
		for i := 1; i <= lv.Len(); i++ {
			b = ngxtAppendSay(b, lv.RawGetInt(i))
		}
		return b
	}
	return append(b, v.String()...)
}

// ngxtState is a bare VM with this package's request-independent ngx
// functions and a minimal ngx.say writing to out.
type ngxtState struct {
	L     *lua.LState
	out   *bytes.Buffer
	dicts map[string]*SharedDict
}

func newNgxtState(t testing.TB, clock Clock) *ngxtState {
	t.Helper()
	s := &ngxtState{L: lua.NewState(), out: &bytes.Buffer{}, dicts: map[string]*SharedDict{
		"dogs":      NewSharedDict("dogs", 1<<20),
		"tiny":      NewSharedDict("tiny", 12288),
		"cats":      NewSharedDict("cats", 1<<20),
		"mid":       NewSharedDict("mid", 100<<10),
		"space100k": NewSharedDict("space100k", 100<<10),
		"space1m":   NewSharedDict("space1m", 1<<20),
		"more":      NewSharedDict("more", 1<<20),
	}}
	t.Cleanup(s.L.Close)
	// The corpus's shared helpers (require "ngxt").
	lib, err := filepath.Abs(filepath.Join("testdata", "ngx", "lib"))
	require.NoError(t, err)
	s.L.GetGlobal("package").(*lua.LTable).RawSetString("path", lua.LString(lib+"/?.lua"))
	if clock == nil {
		clock = NewCachedClock()
	}
	ngx := s.L.NewTable()
	registerNgxEncoding(s.L, ngx)
	registerNgxTime(s.L, ngx, clock)
	registerNgxRe(s.L, ngx)
	registerNgxShared(s.L, ngx, func(name string) *SharedDict { return s.dicts[name] })
	say := func(nl bool) lua.LGFunction {
		return func(L *lua.LState) int {
			var b []byte
			for i := 1; i <= L.GetTop(); i++ {
				b = ngxtAppendSay(b, L.Get(i))
			}
			if nl {
				b = append(b, '\n')
			}
			s.out.Write(b)
			L.Push(lua.LNumber(1))
			return 1
		}
	}
	ngx.RawSetString("say", s.L.NewFunction(say(true)))
	ngx.RawSetString("print", s.L.NewFunction(say(false)))
	ngx.RawSetString("sleep", s.L.NewFunction(func(L *lua.LState) int {
		time.Sleep(time.Duration(float64(L.CheckNumber(1)) * float64(time.Second)))
		return 0
	}))
	s.L.SetGlobal("ngx", ngx)
	return s
}

// run executes code and returns what it printed.
func (s *ngxtState) run(t testing.TB, code string) string {
	t.Helper()
	s.out.Reset()
	require.NoError(t, s.L.DoString(code))
	return s.out.String()
}

// ngxtRun runs code in a fresh state.
func ngxtRun(t testing.TB, code string) string {
	t.Helper()
	return newNgxtState(t, nil).run(t, code)
}

func TestEncodeEscapeURI(t *testing.T) {
	cases := []struct {
		in   string
		kind int
		want string
	}{
		{"a b&c=d/e?f#g", EscapeTypeURIComponent, "a%20b%26c%3Dd%2Fe%3Ff%23g"},
		{"-._~AZaz09", EscapeTypeURIComponent, "-._~AZaz09"},
		{"!*'();:@&=+$,/?#[]", EscapeTypeURIComponent, "!*'()%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D"},
		{"\x00\x7f\x80\xff", EscapeTypeURIComponent, "%00%7F%80%FF"},
		{"/a b?c#d%e\"<>", EscapeTypeURI, "/a%20b%3Fc%23d%25e\"<>"},
		{"a b&c+d;e?", EscapeTypeArgs, "a%20b&c%2Bd;e%3F"},
		{"k y%\x01é", EscapeTypeMemcached, "k%20y%25%01é"},
		{"", EscapeTypeURIComponent, ""},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d/%q", c.kind, c.in), func(t *testing.T) {
			assert.Equal(t, c.want, string(EscapeURI(nil, []byte(c.in), c.kind)))
		})
	}
}

func TestEncodeUnescapeURI(t *testing.T) {
	cases := []struct{ in, want string }{
		{"a%20b", "a b"},
		{"a+b", "a b"},
		{"%41%6a%6A", "Ajj"},
		{"%", "%"},
		{"%4", "%4"},
		{"ab%", "ab%"},
		{"%zz", "%zz"},
		{"%4z", "%4z"},
		{"%%41", "%A"},
		{"%+", "% "},
		{"%2B%2b", "++"},
		{"%00", "\x00"},
		{"plain", "plain"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			assert.Equal(t, c.want, string(UnescapeURI(nil, []byte(c.in))))
		})
	}
}

func TestEncodeRoundTripsEveryByte(t *testing.T) {
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	for kind := EscapeTypeURI; kind <= EscapeTypeMailAuth; kind++ {
		esc := EscapeURI(nil, all, kind)
		if kind == EscapeTypeURIComponent {
			// '+' survives unescaping only when escaped.
			assert.Equal(t, all, UnescapeURI(nil, esc))
		}
		assert.Equal(t, len(esc), ngxEscapedLen(string(all), kind))
	}
}

// ngxtStripWhere defines E(ok, err), which drops the "chunk:line: " prefix
// that both OpenResty and gopher-lua put on raised errors.
const ngxtStripWhere = `local function E(ok, e) return ok, (tostring(e):gsub("^.-:%d+: ", "")) end `

func TestEncodeLuaFunctions(t *testing.T) {
	cases := []struct{ name, code, want string }{
		{"escape nil", `ngx.say(ngx.escape_uri(nil))`, "\n"},
		{"escape number", `ngx.say(ngx.escape_uri(1.5))`, "1.5\n"},
		{"escape type 0", `ngx.say(ngx.escape_uri("a b/c", 0))`, "a%20b/c\n"},
		{"escape bad type", ngxtStripWhere + `ngx.say(E(pcall(ngx.escape_uri, "a", 9)))`, "false\"type\" 9 out of range\n"},
		{"encode_args", `ngx.say(ngx.encode_args({foo = "a b"}))`, "foo=a%20b\n"},
		{"encode_args bool", `ngx.say(ngx.encode_args({foo = true}), "|", ngx.encode_args({foo = false}))`, "foo|\n"},
		{"encode_args multi", `ngx.say(ngx.encode_args({k = {"a", 1, true, false, "b"}}))`, "k=a&k=1&k&k=b\n"},
		{"encode_args number value", `ngx.say(ngx.encode_args({a = 2.5}))`, "a=2.5\n"},
		{"encode_args number key", ngxtStripWhere + `ngx.say(E(pcall(ngx.encode_args, {[1] = 2.5})))`, "falseattempt to use a non-string key in the \"args\" option table\n"},
		{"encode_args bad", ngxtStripWhere + `ngx.say(E(pcall(ngx.encode_args, {a = {{}}})))`, "falseattempt to use table as query arg value\n"},
		{"decode_args", `local t = ngx.decode_args("a=1&b&c=&a=2&=x&&d=%20+") ngx.say(t.a[1], t.a[2], t.b, "[", t.c, "][", t.d, "]")`, "12true[][  ]\n"},
		{"decode_args max", `local t, e = ngx.decode_args("a=1&b=2&c=3", 2) ngx.say(t.a, t.b, t.c, e)`, "12niltruncated\n"},
		{"decode_args unlimited", `local t, e = ngx.decode_args("a=1&b=2&c=3", 0) ngx.say(t.a, t.b, t.c, e)`, "123nil\n"},
		{"decode_args eq in value", `ngx.say(ngx.decode_args("a==b=c").a)`, "=b=c\n"},
		{"base64", `ngx.say(ngx.encode_base64("ab"), " ", ngx.encode_base64("ab", true), " ", ngx.encode_base64(""))`, "YWI= YWI \n"},
		{"base64 decode", `ngx.say(ngx.decode_base64("YWI="), ngx.decode_base64("YWI"), ngx.decode_base64("Y"), ngx.decode_base64("YW!="), ngx.decode_base64("YQ==junk"))`, "ababnilnila\n"},
		{"base64 decode type", ngxtStripWhere + `ngx.say(E(pcall(ngx.decode_base64, 1)))`, "falsestring argument only\n"},
		{"md5", `ngx.say(ngx.md5("hello"))`, "5d41402abc4b2a76b9719d911017c592\n"},
		{"md5_bin", `ngx.say(#ngx.md5_bin("hello"), ngx.encode_base64(ngx.md5_bin("")))`, "161B2M2Y8AsgTpgAmY7PhCfg==\n"},
		{"sha1_bin", `ngx.say(ngx.encode_base64(ngx.sha1_bin("abc")))`, "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=\n"},
		{"hmac_sha1", `ngx.say(ngx.encode_base64(ngx.hmac_sha1("key", "The quick brown fox jumps over the lazy dog")))`, "3nybhbi3iqa8ino29wqQcBydtNk=\n"},
		{"crc32", `ngx.say(ngx.crc32_short("hello"), " ", ngx.crc32_long("hello"), " ", ngx.crc32_short(""))`, "907060870 907060870 0\n"},
		{"quote_sql_str", `ngx.say(ngx.quote_sql_str("a'b\"c\\d\0e\n\r\t\26\8"))`, `'a\'b\"c\\d\0e\n\r\t\Z\b'` + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, ngxtRun(t, c.code))
		})
	}
}

func FuzzEncodeUnescapeURI(f *testing.F) {
	for _, s := range []string{"", "%", "%4", "%41", "+", "%%41", "a%zz", "%E2%82%AC"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := UnescapeURI(nil, []byte(s))
		if len(out) > len(s) {
			t.Fatalf("unescape grew %q to %q", s, out)
		}
		// Escaping any bytes and unescaping them gives them back.
		assert.Equal(t, []byte(s), append([]byte{}, UnescapeURI(nil, EscapeURI(nil, []byte(s), EscapeTypeURIComponent))...))
	})
}

func FuzzEncodeDecodeArgs(f *testing.F) {
	for _, s := range []string{"", "a", "a=1&b", "&&=&", "a=1&a=2&a", "%zz=%", "a=b=c"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		L := lua.NewState()
		defer L.Close()
		tbl, _ := ngxParseArgs(L, s, max%200)
		n := 0
		tbl.ForEach(func(k, v lua.LValue) {
			n++
			require.NotEqual(t, "", k.String())
		})
		require.LessOrEqual(t, n, strings.Count(s, "&")+1)
	})
}

func BenchmarkEncodeEscapeURI(b *testing.B) {
	in := []byte("/search?q=hello world&lang=en-US&x=ü")
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = EscapeURI(buf[:0], in, EscapeTypeURIComponent)
	}
}

func BenchmarkEncodeEscapeURILua(b *testing.B) {
	s := newNgxtState(b, nil)
	fn := s.L.GetField(s.L.GetGlobal("ngx"), "escape_uri")
	arg := lua.LString("/search?q=hello world&lang=en-US")
	b.ReportAllocs()
	for b.Loop() {
		s.L.Push(fn)
		s.L.Push(arg)
		s.L.Call(1, 1)
		s.L.Pop(1)
	}
}

// --- corpus: Lua snippets run here and, when available, under OpenResty ---

var ngxRealOut = flag.String("ngx-real-out", "", "directory where the differential test saves what OpenResty printed for each snippet, plus its error.log")

var updateGolden = flag.Bool("update-ngx-golden", false, "rewrite testdata/ngx/*.out from luaserve's output (review the diff by hand!)")

func ngxtCorpus(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "ngx", "*.lua"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

// ngxtCorpusState makes the state a corpus snippet runs in: a fixed clock
// is not used, snippets only print time-independent facts.
func ngxtRunFile(t *testing.T, file string) string {
	code, err := os.ReadFile(file)
	require.NoError(t, err)
	return newNgxtState(t, nil).run(t, string(code))
}

// TestEncodeCorpusGolden runs every testdata/ngx snippet (encoding, time,
// ngx.re, shared dict) and compares the output with its .out file. The
// .out files are what OpenResty prints; TestEncodeCorpusAgainstNginx checks
// them against the real thing when it is installed.
func TestEncodeCorpusGolden(t *testing.T) {
	for _, file := range ngxtCorpus(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".lua")
		t.Run(name, func(t *testing.T) {
			got := ngxtRunFile(t, file)
			golden := strings.TrimSuffix(file, ".lua") + ".out"
			if *updateGolden {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			assert.Equal(t, string(want), got)
		})
	}
}

const (
	ngxtNginx     = "/usr/sbin/nginx"
	ngxtLuaModule = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
	ngxtNDKModule = "/usr/lib/nginx/modules/ndk_http_module.so"
)

// TestEncodeCorpusAgainstNginx runs the same snippets under Debian's nginx
// with lua-nginx-module and requires byte-identical output from luaserve.
func TestEncodeCorpusAgainstNginx(t *testing.T) {
	for _, p := range []string{ngxtNginx, ngxtLuaModule, ngxtNDKModule} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("differential test needs nginx with lua-nginx-module: %s is missing (Debian: apt-get install nginx libnginx-mod-http-lua)", p)
		}
	}
	files := ngxtCorpus(t)
	prefix := t.TempDir()
	require.NoError(t, os.Chmod(prefix, 0o755))
	for _, d := range []string{"logs", "tmp", "lua"} {
		require.NoError(t, os.MkdirAll(filepath.Join(prefix, d), 0o755))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	lib, err := os.ReadFile(filepath.Join("testdata", "ngx", "lib", "ngxt.lua"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(prefix, "lua", "ngxt.lua"), lib, 0o644))
	var locs strings.Builder
	for _, file := range files {
		abs, err := filepath.Abs(file)
		require.NoError(t, err)
		dst := filepath.Join(prefix, "lua", filepath.Base(file))
		code, err := os.ReadFile(abs)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, code, 0o644))
		name := strings.TrimSuffix(filepath.Base(file), ".lua")
		fmt.Fprintf(&locs, "        location = /%s { content_by_lua_file %s; }\n", name, dst)
	}
	conf := fmt.Sprintf(`load_module %s;
load_module %s;
daemon off;
master_process off;
worker_processes 1;
error_log %[3]s/logs/error.log warn;
pid %[3]s/logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[3]s/tmp/body;
    proxy_temp_path %[3]s/tmp/proxy;
    fastcgi_temp_path %[3]s/tmp/fastcgi;
    uwsgi_temp_path %[3]s/tmp/uwsgi;
    scgi_temp_path %[3]s/tmp/scgi;
    lua_package_path "%[3]s/lua/?.lua;;";
    lua_shared_dict dogs 1m;
    lua_shared_dict tiny 12k;
    lua_shared_dict cats 1m;
    lua_shared_dict mid 100k;
    lua_shared_dict space100k 100k;
    lua_shared_dict space1m 1m;
    lua_shared_dict more 1m;
    server {
        listen %[4]s;
%[5]s    }
}
`, ngxtNDKModule, ngxtLuaModule, prefix, addr, locs.String())
	confPath := filepath.Join(prefix, "nginx.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o644))

	cmd := exec.Command(ngxtNginx, "-p", prefix, "-c", confPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
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
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".lua")
		t.Run(name, func(t *testing.T) {
			resp, err := client.Get("http://" + addr + "/" + name)
			require.NoError(t, err)
			defer resp.Body.Close()
			var body bytes.Buffer
			_, err = body.ReadFrom(resp.Body)
			require.NoError(t, err)
			if *ngxRealOut != "" {
				require.NoError(t, os.WriteFile(filepath.Join(*ngxRealOut, name+".out"), body.Bytes(), 0o644))
				log, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
				require.NoError(t, os.WriteFile(filepath.Join(*ngxRealOut, "error.log"), log, 0o644))
			}
			if resp.StatusCode != http.StatusOK {
				log, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
				t.Fatalf("status %d\nerror.log: %s", resp.StatusCode, log)
			}
			assert.Equal(t, body.String(), ngxtRunFile(t, file), "luaserve differs from OpenResty")
		})
	}
}

func ExampleEscapeURI() {
	key := EscapeURI(nil, []byte("user:42 name=Ana&x"), EscapeTypeURIComponent)
	fmt.Println(string(key))
	fmt.Println(string(UnescapeURI(nil, key)))
	// Output:
	// user%3A42%20name%3DAna%26x
	// user:42 name=Ana&x
}
