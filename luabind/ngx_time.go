package luabind

import (
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Clock is the time source behind ngx.now, ngx.time and friends. nginx caches
// the time once per event-loop iteration and ngx.update_time refreshes it;
// a Clock does the same: Now returns the cached time, Update re-reads the
// system clock. Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
	Update()
}

// CachedClock is the default Clock: the time is read from the system only in
// Update (and at creation), so Now is a single atomic load. The engine
// calls Update when a request starts, as nginx does per event-loop turn.
type CachedClock struct {
	nanos atomic.Int64
}

// NewCachedClock returns a CachedClock set to the current time.
func NewCachedClock() *CachedClock {
	c := &CachedClock{}
	c.Update()
	return c
}

// Now returns the cached time, truncated to milliseconds like nginx's.
func (c *CachedClock) Now() time.Time {
	return time.Unix(0, c.nanos.Load())
}

// Update re-reads the system clock.
func (c *CachedClock) Update() { c.Set(time.Now()) }

// Set sets the cached time to now. Every request calls it, from every
// core: storing only when the millisecond changed keeps the cache line
// shared instead of bouncing it between cores on each request.
func (c *CachedClock) Set(now time.Time) {
	ms := now.Truncate(time.Millisecond).UnixNano()
	if c.nanos.Load() != ms {
		c.nanos.Store(ms)
	}
}

// registerNgxTime installs ngx.now, time, today, localtime, utctime,
// update_time, http_time, cookie_time and parse_http_time on ngx, reading
// the time from clock.
func registerNgxTime(L *lua.LState, ngx *lua.LTable, clock Clock) {
	fns := map[string]lua.LGFunction{
		"now": func(L *lua.LState) int {
			t := clock.Now()
			ms := t.UnixMilli()
			L.Push(lua.LNumber(float64(ms/1000) + float64(ms%1000)/1000))
			return 1
		},
		"time": func(L *lua.LState) int {
			L.Push(lua.LNumber(clock.Now().Unix()))
			return 1
		},
		"today": func(L *lua.LState) int {
			L.Push(lua.LString(clock.Now().Local().Format("2006-01-02")))
			return 1
		},
		"localtime": func(L *lua.LState) int {
			L.Push(lua.LString(clock.Now().Local().Format("2006-01-02 15:04:05")))
			return 1
		},
		"utctime": func(L *lua.LState) int {
			L.Push(lua.LString(clock.Now().UTC().Format("2006-01-02 15:04:05")))
			return 1
		},
		"update_time": func(L *lua.LState) int {
			clock.Update()
			return 0
		},
		"http_time": func(L *lua.LState) int {
			L.Push(lua.LString(AppendHTTPTime(nil, ngxCheckSeconds(L))))
			return 1
		},
		"cookie_time": func(L *lua.LState) int {
			L.Push(lua.LString(AppendCookieTime(nil, ngxCheckSeconds(L))))
			return 1
		},
		"parse_http_time": func(L *lua.LState) int {
			s, ok := L.Get(1).(lua.LString)
			if !ok {
				L.RaiseError("string argument only")
			}
			t, ok := ParseHTTPTime(string(s))
			// -1 is NGX_ERROR to lua-nginx-module, so the last second of
			// 1969 reads as a parse failure there too.
			if !ok || t == -1 {
				L.Push(lua.LNil)
				return 1
			}
			L.Push(lua.LNumber(t))
			return 1
		},
	}
	for name, fn := range fns {
		ngx.RawSetString(name, L.NewFunction(fn))
	}
}

// ngxCheckSeconds reads a time_t argument: a number, truncated toward zero as
// the C cast in lua-nginx-module does.
func ngxCheckSeconds(L *lua.LState) int64 {
	n, ok := L.Get(1).(lua.LNumber)
	if !ok {
		L.RaiseError("number argument only")
	}
	return int64(n)
}

var (
	ngxWeekNames  = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	ngxMonthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

func appendTwoDigits(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10%10), byte('0'+n%10))
}

func ngxAppendClock(dst []byte, t time.Time) []byte {
	dst = appendTwoDigits(dst, t.Hour())
	dst = append(dst, ':')
	dst = appendTwoDigits(dst, t.Minute())
	dst = append(dst, ':')
	dst = appendTwoDigits(dst, t.Second())
	return append(dst, " GMT"...)
}

func ngxAppendYear(dst []byte, y int) []byte {
	if y < 1000 {
		// %4d pads with spaces
		for d := 1000; d > 1 && y < d; d /= 10 {
			dst = append(dst, ' ')
		}
	}
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + y%10)
		y /= 10
		if y == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// AppendHTTPTime appends sec formatted as ngx_http_time does
// ("Thu, 18 Nov 2010 11:27:35 GMT").
func AppendHTTPTime(dst []byte, sec int64) []byte {
	t := time.Unix(sec, 0).UTC()
	dst = append(dst, ngxWeekNames[t.Weekday()]...)
	dst = append(dst, ", "...)
	dst = appendTwoDigits(dst, t.Day())
	dst = append(dst, ' ')
	dst = append(dst, ngxMonthNames[t.Month()-1]...)
	dst = append(dst, ' ')
	dst = ngxAppendYear(dst, t.Year())
	dst = append(dst, ' ')
	return ngxAppendClock(dst, t)
}

// AppendCookieTime appends sec formatted as ngx_cookie_time does
// ("Thu, 18-Nov-10 11:27:35 GMT"); years after 2037 keep four digits.
func AppendCookieTime(dst []byte, sec int64) []byte {
	t := time.Unix(sec, 0).UTC()
	dst = append(dst, ngxWeekNames[t.Weekday()]...)
	dst = append(dst, ", "...)
	dst = appendTwoDigits(dst, t.Day())
	dst = append(dst, '-')
	dst = append(dst, ngxMonthNames[t.Month()-1]...)
	dst = append(dst, '-')
	if y := t.Year(); y > 2037 {
		dst = ngxAppendYear(dst, y)
	} else {
		dst = appendTwoDigits(dst, y%100)
	}
	dst = append(dst, ' ')
	return ngxAppendClock(dst, t)
}

var ngxMonthDays = [12]uint64{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// ParseHTTPTime is nginx's ngx_parse_http_time: RFC 822 ("Sun, 06 Nov 1994
// 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
// ("Sun Nov  6 08:49:37 1994"). Like nginx it ignores the weekday and
// whatever follows the seconds (or the year, for asctime), and computes in
// unsigned 64-bit arithmetic, so odd years wrap the same way.
func ParseHTTPTime(s string) (int64, bool) {
	const (
		unknown = iota
		rfc822
		rfc850
		isoc
	)
	// at returns 0 past the end; nginx relies on its length checks instead,
	// which leave some reads to the terminating byte.
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	digit := func(i int) (uint64, bool) {
		c := at(i)
		return uint64(c - '0'), c >= '0' && c <= '9'
	}
	two := func(i int) (uint64, bool) {
		a, ok1 := digit(i)
		b, ok2 := digit(i + 1)
		return a*10 + b, ok1 && ok2
	}
	four := func(i int) (uint64, bool) {
		a, ok1 := two(i)
		b, ok2 := two(i + 2)
		return a*100 + b, ok1 && ok2
	}

	form := unknown
	p := 0
	for ; p < len(s); p++ {
		if s[p] == ',' {
			break
		}
		if s[p] == ' ' {
			form = isoc
			break
		}
	}
	for p++; p < len(s); p++ {
		if s[p] != ' ' {
			break
		}
	}
	if len(s)-p < 18 {
		return 0, false
	}
	var day, year uint64
	var ok bool
	if form != isoc {
		if day, ok = two(p); !ok {
			return 0, false
		}
		p += 2
		switch at(p) {
		case ' ':
			if len(s)-p < 18 {
				return 0, false
			}
			form = rfc822
		case '-':
			form = rfc850
		default:
			return 0, false
		}
		p++
	}

	var month int64
	switch at(p) {
	case 'J':
		switch {
		case at(p+1) == 'a':
			month = 0
		case at(p+2) == 'n':
			month = 5
		default:
			month = 6
		}
	case 'F':
		month = 1
	case 'M':
		if at(p+2) == 'r' {
			month = 2
		} else {
			month = 4
		}
	case 'A':
		if at(p+1) == 'p' {
			month = 3
		} else {
			month = 7
		}
	case 'S':
		month = 8
	case 'O':
		month = 9
	case 'N':
		month = 10
	case 'D':
		month = 11
	default:
		return 0, false
	}
	p += 3
	if (form == rfc822 && at(p) != ' ') || (form == rfc850 && at(p) != '-') {
		return 0, false
	}
	p++

	switch form {
	case rfc822:
		if year, ok = four(p); !ok {
			return 0, false
		}
		p += 4
	case rfc850:
		if year, ok = two(p); !ok {
			return 0, false
		}
		if year < 70 {
			year += 2000
		} else {
			year += 1900
		}
		p += 2
	case isoc:
		if at(p) == ' ' {
			p++
		}
		d, ok := digit(p)
		if !ok {
			return 0, false
		}
		day = d
		p++
		if at(p) != ' ' {
			d, ok := digit(p)
			if !ok {
				return 0, false
			}
			day = day*10 + d
			p++
		}
		if len(s)-p < 14 {
			return 0, false
		}
	}

	if at(p) != ' ' {
		return 0, false
	}
	p++
	hour, ok := two(p)
	if !ok {
		return 0, false
	}
	p += 2
	if at(p) != ':' {
		return 0, false
	}
	p++
	min, ok := two(p)
	if !ok {
		return 0, false
	}
	p += 2
	if at(p) != ':' {
		return 0, false
	}
	p++
	sec, ok := two(p)
	if !ok {
		return 0, false
	}
	if form == isoc {
		p += 2
		if at(p) != ' ' {
			return 0, false
		}
		p++
		if year, ok = four(p); !ok {
			return 0, false
		}
	}

	if hour > 23 || min > 59 || sec > 59 {
		return 0, false
	}
	if day == 29 && month == 1 {
		if year&3 != 0 || (year%100 == 0 && year%400 != 0) {
			return 0, false
		}
	} else if day > ngxMonthDays[month] {
		return 0, false
	}

	// Shift the year to start on March 1 for Gauss' formula, as nginx does.
	month--
	if month <= 0 {
		month += 12
		year--
	}
	m := uint64(month)
	days := 365*year + year/4 - year/100 + year/400 + 367*m/12 - 30 + day - 1 - 719527 + 31 + 28
	return int64(days*86400 + hour*3600 + min*60 + sec), true
}
