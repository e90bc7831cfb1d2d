package luabind

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"
)

func TestReTranslate(t *testing.T) {
	cases := []struct {
		pattern string
		flags   uint16
		want    string
		ncap    int
	}{
		{`(a)(?<n>b)(c)`, 0, `(?<1>a)(?<2>b)(?<3>c)`, 3},
		{`(?P<n>x)(?P=n)`, 0, `(?<1>x)(?:\1)`, 1},
		{`\d\w\s`, 0, `[0-9][a-zA-Z0-9_][\t\n\x0B\f\r ]`, 0},
		{`[\d_-]`, 0, `[0-9_-]`, 0},
		{`[[:alpha:]]`, 0, `[a-zA-Z]`, 0},
		{`\Q.*\E`, 0, `\.\*`, 0},
		{`\x41\x{263a}`, reUTF8, `\x41\u263A`, 0},
		{`a b # c`, reExtended, `ab`, 0},
		{`a++`, 0, `(?>a+)`, 0},
		{`(ab)*+`, 0, `(?>(?<1>ab)*)`, 1},
		{`\1(a)`, 0, `(?:\1)(?<1>a)`, 1},
		{`\2(a)`, 0, ``, -1},
		{`(?#c)a`, 0, `a`, 0},
		{`a{`, 0, `a\{`, 0},
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			src := latin1Runes(nil, c.pattern)
			if c.flags&reUTF8 != 0 {
				src = []rune(c.pattern)
			}
			tr := pcreTranslator{src: src, extendedAtStart: c.flags&reExtended != 0}
			ok := tr.run()
			if ok {
				tr.out.Reset()
				tr.pass2 = true
				ok = tr.run()
			}
			if c.ncap < 0 {
				assert.False(t, ok)
				return
			}
			require.True(t, ok, tr.err)
			assert.Equal(t, c.want, tr.out.String())
			assert.Equal(t, c.ncap, tr.ncap)
		})
	}
}

func TestReLuaAPI(t *testing.T) {
	cases := []struct{ name, code, want string }{
		{"match", `local m = ngx.re.match("hello, 1234", "([0-9])([0-9]+)") ngx.say(m[0], " ", m[1], " ", m[2])`, "1234 1 234\n"},
		{"named", `local m = ngx.re.match("k=v", "(?<key>\\w+)=(?<val>\\w+)") ngx.say(m.key, m[1], m.val, m[2])`, "kkvv\n"},
		{"unmatched is false", `local m = ngx.re.match("a", "(a)(b)?") ngx.say(m[2])`, "false\n"},
		{"no match", `ngx.say(ngx.re.match("a", "b"))`, "nil\n"},
		{"ctx", `local ctx = {pos = 3} local m = ngx.re.match("a1b2", "\\d", "", ctx) ngx.say(m[0], ctx.pos)`, "25\n"},
		{"find", `ngx.say(ngx.re.find("hello, 1234", "([0-9])([0-9]+)", "jo", nil, 2))`, "911\n"},
		{"gmatch", `local out = {} for m in ngx.re.gmatch("a1b22", "\\d+") do out[#out+1] = m[0] end ngx.say(table.concat(out, ","))`, "1,22\n"},
		{"sub", `ngx.say(ngx.re.sub("hello", "l", "L"))`, "heLlo1\n"},
		{"gsub template", `ngx.say(ngx.re.gsub("a=1, b=2", "(\\w)=(\\d)", "$2=$1"))`, "1=a, 2=b2\n"},
		{"gsub func", `ngx.say(ngx.re.gsub("a b", "\\w", function(m) return m[0]:upper() end))`, "A B2\n"},
		{"gsub nested", `ngx.say(ngx.re.gsub("ab", "\\w", function(m) return (ngx.re.sub(m[0], "b", "B")) end))`, "aB2\n"},
		{"compile error", `ngx.say(ngx.re.match("a", "("))`, "nilpcre_compile() failed: missing ) in \"(\"\n"},
		{"unknown flag", ngxtStripWhere + `ngx.say(E(pcall(ngx.re.match, "a", "a", "q")))`, "falseunknown flag \"q\" (flags \"q\")\n"},
		{"bad utf8", `ngx.say(ngx.re.match("\255", ".", "u"))`, "nilpcre_exec() failed: -10\n"},
		{"dfa unsupported", `local m, err = ngx.re.match("a", "a", "d") ngx.say(m, err ~= nil)`, "niltrue\n"},
		{"template named", `ngx.say(ngx.re.sub("a", "(?<x>a)", "${x}"))`, "nilnilfailed to compile the replacement template\n"},
	}
	s := newNgxtState(t, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, s.run(t, c.code))
		})
	}
}

func TestReCompileCacheIsBounded(t *testing.T) {
	for i := 0; i < reCacheMax+10; i++ {
		rx, msg := reCompile(fmt.Sprintf("cache-bound-%d", i), reOnce)
		require.NotNil(t, rx, msg)
	}
	reCache.RLock()
	n := len(reCache.m)
	reCache.RUnlock()
	assert.LessOrEqual(t, n, reCacheMax)
	a, _ := reCompile("cache-bound-0", reOnce)
	b, _ := reCompile("cache-bound-0", reOnce)
	assert.Same(t, a, b, "an \"o\" pattern compiles once")
}

// TestReConcurrentVMs runs the same cached patterns from many VMs at once;
// run with -race.
func TestReConcurrentVMs(t *testing.T) {
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			L := lua.NewState()
			defer L.Close()
			ngx := L.NewTable()
			registerNgxRe(L, ngx)
			L.SetGlobal("ngx", ngx)
			err := L.DoString(`
				for i = 1, 200 do
					local m = ngx.re.match("key" .. i .. "=v", "(?<k>\\w+)=(\\w)", "jo")
					assert(m.k == "key" .. i, m.k)
					local s = ngx.re.gsub("a.b.c", "\\.", "/", "jo")
					assert(s == "a/b/c")
				end`)
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
}

func FuzzReCompile(f *testing.F) {
	for _, s := range []string{`(a)(?<n>b)\k<n>`, `[[:alpha:]\d]+`, `\Q(\E`, `(?<=a|bc)x`, `a{2,1}`, `(?x) a # c`, `\g{-1}(a)`, `(?(1)a|b)`} {
		f.Add(s, uint16(0))
	}
	f.Fuzz(func(t *testing.T, pattern string, flags uint16) {
		flags &= reCaseless | reMultiline | reDotAll | reExtended | reUTF8 | reAnchored | reDupNames
		rx, msg := compileNgxRegex(pattern, flags)
		if rx == nil {
			require.True(t, strings.HasPrefix(msg, "pcre_compile() failed: "), msg)
			return
		}
		var sub reSubject
		sub.prepare(pattern, flags)
		caps := make([]int, 2*(rx.ncap+1))
		_, _ = rx.exec(&sub, 0, caps)
	})
}

func BenchmarkReMatchCached(b *testing.B) {
	s := newNgxtState(b, nil)
	require.NoError(b, s.L.DoString(`
		function bench_match()
			return ngx.re.match("GET /api/v1/users/12345 HTTP/1.1", "^(\\w+) /api/v(\\d)/(\\w+)/(\\d+)", "jo")
		end`))
	fn := s.L.GetGlobal("bench_match")
	b.ReportAllocs()
	for b.Loop() {
		s.L.Push(fn)
		s.L.Call(0, 1)
		s.L.Pop(1)
	}
}

func BenchmarkReFindCached(b *testing.B) {
	s := newNgxtState(b, nil)
	require.NoError(b, s.L.DoString(`
		function bench_find()
			return ngx.re.find("GET /api/v1/users/12345 HTTP/1.1", "\\d+", "jo")
		end`))
	fn := s.L.GetGlobal("bench_find")
	b.ReportAllocs()
	for b.Loop() {
		s.L.Push(fn)
		s.L.Call(0, 2)
		s.L.Pop(2)
	}
}

// BenchmarkReEngine compares the engines on a pattern both accept: the
// measurement behind the Go regexp fast path.
func BenchmarkReEngine(b *testing.B) {
	const subject = "GET /api/v1/users/12345 HTTP/1.1"
	const pattern = `^(\w+) /api/v(\d)/(\w+)/(\d+)`
	for _, fast := range []bool{true, false} {
		name := "ngx-regexp2"
		if fast {
			name = "ngx-fastpath"
		}
		b.Run(name, func(b *testing.B) {
			rx, msg := compileNgxRegex(pattern, 0)
			require.NotNil(b, rx, msg)
			require.NotNil(b, rx.goRe)
			if !fast {
				rx.goRe = nil
			}
			var sub reSubject
			caps := make([]int, 2*(rx.ncap+1))
			b.ReportAllocs()
			for b.Loop() {
				sub.prepare(subject, 0)
				_, _ = rx.exec(&sub, 0, caps)
			}
		})
	}
	b.Run("regexp2-raw", func(b *testing.B) {
		re := regexp2.MustCompile(pattern, 0)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = re.FindStringMatch(subject)
		}
	})
	b.Run("go-regexp", func(b *testing.B) {
		re := regexp.MustCompile(pattern)
		dst := make([]int, 0, 10)
		b.ReportAllocs()
		for b.Loop() {
			dst = re.FindStringSubmatchIndex(subject)
		}
		_ = dst
	})
}

// reBothEngines runs rx at pos on its fast path and on regexp2 and fails
// the test when they disagree.
func reBothEngines(t *testing.T, rx *ngxRegex, subject string, pos int) (usedFast bool) {
	t.Helper()
	slow := *rx
	slow.goRe = nil
	var a, b reSubject
	a.prepare(subject, rx.flags)
	b.prepare(subject, rx.flags)
	if !rx.fastOK(&a, pos) {
		return false
	}
	capsA := make([]int, 2*(rx.ncap+1))
	capsB := make([]int, 2*(rx.ncap+1))
	rcA, errA := rx.exec(&a, pos, capsA)
	rcB, errB := slow.exec(&b, pos, capsB)
	if errB != "" {
		return true // regexp2 gave up (timeout); nothing to compare
	}
	require.Equal(t, errB, errA)
	require.Equal(t, rcB, rcA, "rc for %q on %q at %d", rx.re.String(), subject, pos)
	if rcB > 0 {
		require.Equal(t, capsB, capsA, "captures for %q on %q at %d", rx.re.String(), subject, pos)
	}
	return true
}

func TestReFastPathAgreesWithRegexp2(t *testing.T) {
	patterns := []string{
		`[0-9]+`, `(\d)(\d+)`, `^(\w+)=(\w*)$`, `(?<k>\w+)=(?<v>\w+)`, `a|ab|abc`, `(a|ab)(c|bcd)(d*)`,
		`(a*)*`, `(a*)+`, `(a|b)*c`, `(?:(a)|b)+`, `(a)|(b)`, `x*`, `^$`, `$`, `^`, `a.c`, `[^a-c]+`,
		`(?i)hello`, `[[:alpha:]]+\s+[[:digit:]]+`, `a{2,3}?`, `(a+?)(a*)`, `.*?x`, `(\s*)(\S+)(\s*)`,
		`\d{1,3}(?:\.\d{1,3}){3}`, `([a-z]+)@([a-z]+)\.com`, `(?m)^\w+$`, `(?s)a.b`, `\Aab\z`,
	}
	subjects := []string{"", "a", "abc", "abcd", "hello, 1234", "k=v", "x=", "aaa", "ab ab", "bab", "HeLLo",
		"192.168.0.1", "joe@example.com", "a\nb", "line1\nline2", "  spaced  out  ", "xyzx", "\t\x0b\f"}
	fast := 0
	for _, p := range patterns {
		for _, opts := range []uint16{0, reCaseless, reMultiline | reDotAll} {
			rx, msg := compileNgxRegex(p, opts)
			require.NotNil(t, rx, msg)
			for _, s := range subjects {
				for _, pos := range []int{0, 1, 2} {
					if pos <= len(s) && reBothEngines(t, rx, s, pos) {
						fast++
					}
				}
			}
		}
	}
	assert.Greater(t, fast, 1000, "the fast path should serve most of these")
}

func FuzzReFastPath(f *testing.F) {
	for _, s := range []string{`(a|ab)(c|bcd)(d*)`, `(\w+)\s*=\s*(\w*)`, `^(a*)*$`, `(?:(a)|b)+`, `((a)|(b))+`, `(a?)+?`, `(?m)^(\w*)$`, `(a|)+b`, `(\d+)?(\.\d*)?`} {
		f.Add(s, "abcd ab = cd", uint16(0), 0)
	}
	f.Fuzz(func(t *testing.T, pattern, subject string, flags uint16, pos int) {
		flags &= reCaseless | reMultiline | reDotAll | reExtended | reUTF8
		rx, _ := compileNgxRegex(pattern, flags)
		if rx == nil || rx.goRe == nil || pos < 0 || pos > len(subject) {
			return
		}
		rx.re.MatchTimeout = 50 * time.Millisecond
		reBothEngines(t, rx, subject, pos)
	})
}
