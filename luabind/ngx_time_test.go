package luabind

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTimeCachedClock(t *testing.T) {
	c := NewCachedClock()
	first := c.Now()
	assert.Equal(t, first, c.Now(), "Now must not move between updates")
	assert.Zero(t, first.Nanosecond()%int(time.Millisecond), "nginx time has millisecond resolution")
	time.Sleep(5 * time.Millisecond)
	c.Update()
	assert.True(t, c.Now().After(first))
}

func TestTimeLuaFunctions(t *testing.T) {
	at := time.Date(2010, 11, 18, 11, 27, 35, 678e6, time.UTC)
	s := newNgxtState(t, &ngxtFixedClock{at})
	cases := []struct{ name, code, want string }{
		{"now", `ngx.say(ngx.now())`, "1290079655.678\n"},
		{"time", `ngx.say(ngx.time())`, "1290079655\n"},
		{"utctime", `ngx.say(ngx.utctime())`, "2010-11-18 11:27:35\n"},
		{"localtime", `ngx.say(ngx.localtime())`, at.Local().Format("2006-01-02 15:04:05") + "\n"},
		{"today", `ngx.say(ngx.today())`, at.Local().Format("2006-01-02") + "\n"},
		{"http_time", `ngx.say(ngx.http_time(1290079655))`, "Thu, 18 Nov 2010 11:27:35 GMT\n"},
		{"cookie_time", `ngx.say(ngx.cookie_time(1290079655))`, "Thu, 18-Nov-10 11:27:35 GMT\n"},
		{"cookie_time 2038", `ngx.say(ngx.cookie_time(2208988800))`, "Sun, 01-Jan-2040 00:00:00 GMT\n"},
		{"parse", `ngx.say(ngx.parse_http_time("Thu, 18 Nov 2010 11:27:35 GMT"))`, "1290079655\n"},
		{"parse bad", `ngx.say(ngx.parse_http_time("Thu, 18 Nov 2010"))`, "nil\n"},
		{"http_time type", ngxtStripWhere + `ngx.say(E(pcall(ngx.http_time, "1")))`, "falsenumber argument only\n"},
		{"parse type", ngxtStripWhere + `ngx.say(E(pcall(ngx.parse_http_time, 1)))`, "falsestring argument only\n"},
		{"update_time", `ngx.update_time() ngx.say(ngx.time())`, "1290079655\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, s.run(t, c.code))
		})
	}
}

func TestTimeHTTPTimeRoundTrip(t *testing.T) {
	for _, sec := range []int64{0, 1, 59, 86399, 951782400, 1290079655, 2147483648, 253402300799} {
		ht := string(AppendHTTPTime(nil, sec))
		got, ok := ParseHTTPTime(ht)
		require.True(t, ok, ht)
		assert.Equal(t, sec, got, ht)
		assert.Equal(t, time.Unix(sec, 0).UTC().Format(http.TimeFormat), ht)
	}
}

func TestTimeParseHTTPTimeFormats(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", 784111777, true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", 784111777, true},
		{"Sun Nov  6 08:49:37 1994", 784111777, true},
		{"Sun Nov 6 08:49:37 1994", 784111777, true},
		{"Sun, 06 Nov 1994 08:49:37", 784111777, true},
		{"Sun, 06 Nov 1994 8:49:37 GMT", 0, false},
		{"Sun, 31 Nov 1994 08:49:37 GMT", 0, false},
		{"Sun, 06 Nov 1994 08:49", 0, false},
		{"", 0, false},
		{",", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseHTTPTime(c.in)
		assert.Equal(t, c.ok, ok, c.in)
		if c.ok {
			assert.Equal(t, c.want, got, c.in)
		}
	}
}

func FuzzTimeParseHTTPTime(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "J", ", 00 J", "x 9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sec, ok := ParseHTTPTime(s)
		if !ok || sec < 0 || sec > 253402300799 {
			return
		}
		// Whatever parses as a plain date must survive a round trip.
		back, ok := ParseHTTPTime(string(AppendHTTPTime(nil, sec)))
		if !ok || back != sec {
			t.Fatalf("%q → %d → %q → %d", s, sec, AppendHTTPTime(nil, sec), back)
		}
	})
}

func BenchmarkTimeHTTPTime(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendHTTPTime(buf[:0], 1290079655)
	}
}

func BenchmarkTimeCachedClockNow(b *testing.B) {
	c := NewCachedClock()
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Now()
	}
}
