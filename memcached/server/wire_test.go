package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"luaserve/memcached"
)

// Helpers shared by the differential and unit tests: raw request builders
// and readers that turn wire bytes into comparable text.

// req is a binary request with every header field settable, so malformed
// packets can be written as easily as good ones.
type req struct {
	magic   byte
	op      memcached.Opcode
	key     string
	extras  []byte
	value   string
	opaque  uint32
	cas     uint64
	keylen  int // -1: len(key)
	extlen  int // -1: len(extras)
	bodylen int64
}

func breq(op memcached.Opcode, key string, extras []byte, value string) req {
	return req{magic: memcached.MagicRequest, op: op, key: key, extras: extras, value: value, keylen: -1, extlen: -1, bodylen: -1}
}

func (r req) withOpaque(o uint32) req { r.opaque = o; return r }
func (r req) withCAS(c uint64) req    { r.cas = c; return r }
func (r req) withBody(n int64) req    { r.bodylen = n; return r }
func (r req) withKeylen(n int) req    { r.keylen = n; return r }
func (r req) withMagic(m byte) req    { r.magic = m; return r }

func (r req) bytes() []byte {
	kl, el, bl := len(r.key), len(r.extras), int64(len(r.key)+len(r.extras)+len(r.value))
	if r.keylen >= 0 {
		kl = r.keylen
	}
	if r.extlen >= 0 {
		el = r.extlen
	}
	if r.bodylen >= 0 {
		bl = r.bodylen
	}
	b := make([]byte, memcached.HeaderLen, memcached.HeaderLen+len(r.key)+len(r.extras)+len(r.value))
	b[0] = r.magic
	b[1] = byte(r.op)
	binary.BigEndian.PutUint16(b[2:], uint16(kl))
	b[4] = byte(el)
	binary.BigEndian.PutUint32(b[8:], uint32(bl))
	binary.BigEndian.PutUint32(b[12:], r.opaque)
	binary.BigEndian.PutUint64(b[16:], r.cas)
	b = append(b, r.extras...)
	b = append(b, r.key...)
	return append(b, r.value...)
}

func setExtras(flags, exp uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, flags), exp)
}

func incrExtras(delta, initial uint64, exp uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, delta)
	b = binary.BigEndian.AppendUint64(b, initial)
	return binary.BigEndian.AppendUint32(b, exp)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func pkts(rs ...req) []byte {
	var b []byte
	for _, r := range rs {
		b = append(b, r.bytes()...)
	}
	return b
}

// readIdle reads until the peer closes or stays quiet for idle. A close is
// marked "<EOF>".
func readIdle(t testing.TB, c net.Conn, idle time.Duration) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(idle)))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return append(out, "<EOF>"...)
			}
			t.Fatalf("read: %v", err)
		}
		if len(out) > 64<<20 {
			t.Fatalf("runaway response")
		}
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// statsCompared are the stats whose values must match memcached's; every
// other value differs by nature (pid, times, memory layout) and is masked.
// get_expired and get_flushed are left out: memcached's LRU maintainer
// thread reclaims dead items at its own pace, so which lookup meets them
// first is timing. curr_connections too: memcached may still count the
// connection the previous case closed (TestCurrConnectionsCountsClients
// checks ours).
var statsCompared = map[string]bool{
	"version": true, "pointer_size": true, "max_connections": true,
	"cmd_get": true, "cmd_set": true, "cmd_flush": true, "cmd_touch": true,
	"get_hits": true, "get_misses": true,
	"delete_misses": true, "delete_hits": true, "incr_misses": true, "incr_hits": true,
	"decr_misses": true, "decr_hits": true, "cas_misses": true, "cas_hits": true,
	"cas_badval": true, "touch_hits": true, "touch_misses": true, "store_too_large": true,
	"auth_cmds": true, "auth_errors": true, "limit_maxbytes": true, "threads": true,
	"curr_items": true, "total_items": true, "evictions": true, "bytes": true,
	"maxbytes": true, "maxconns": true, "cas_enabled": true, "binding_protocol": true,
	"auth_enabled_sasl": true, "item_size_max": true, "flush_enabled": true, "evictions_on": true,
}

var (
	valueLineRE = regexp.MustCompile(`(?m)^(VALUE \S+ \d+ \d+) \d+\r$`)
	statLineRE  = regexp.MustCompile(`(?m)^STAT (\S+) (.*)\r$`)
	statFdRE    = regexp.MustCompile(`(?m)^STAT \d+:`)
)

// normText masks what must differ in text replies: CAS uniques and the
// values of volatile stats.
func normText(b []byte) string {
	s := valueLineRE.ReplaceAllString(string(b), "$1 <cas>\r")
	s = statFdRE.ReplaceAllString(s, "STAT <fd>:")
	s = statLineRE.ReplaceAllStringFunc(s, func(line string) string {
		m := statLineRE.FindStringSubmatch(line)
		if statsCompared[m[1]] {
			return line
		}
		return "STAT " + m[1] + " <v>\r"
	})
	// "stats conns" lists every client of the server, and how many other
	// subtests' connections are open at that moment differs between runs:
	// one client group stands for any number.
	for strings.Contains(s, connGroup+connGroup) {
		s = strings.ReplaceAll(s, connGroup+connGroup, connGroup)
	}
	return s
}

// connGroup is one client connection in normalised "stats conns" output.
const connGroup = "STAT <fd>:addr <v>\r\nSTAT <fd>:listen_addr <v>\r\nSTAT <fd>:state <v>\r\nSTAT <fd>:secs_since_last_cmd <v>\r\n"

// normBinary renders binary replies one packet per line, with CAS reduced
// to whether it is set and volatile stat values masked.
func normBinary(b []byte) string {
	var sb strings.Builder
	for len(b) >= memcached.HeaderLen && b[0] == memcached.MagicResponse {
		kl := int(binary.BigEndian.Uint16(b[2:]))
		el := int(b[4])
		bl := int(binary.BigEndian.Uint32(b[8:]))
		if len(b) < memcached.HeaderLen+bl {
			break
		}
		body := b[memcached.HeaderLen : memcached.HeaderLen+bl]
		cas := binary.BigEndian.Uint64(b[16:]) != 0
		op := memcached.Opcode(b[1])
		key := string(body[el:min(el+kl, len(body))])
		val := string(body[min(el+kl, len(body)):])
		if op == memcached.OpStat && key != "" && !statsCompared[key] {
			val = "<v>"
		}
		fmt.Fprintf(&sb, "%s st=%#x dt=%d ext=%x key=%q val=%q opaque=%d cas=%v\n",
			op, binary.BigEndian.Uint16(b[6:]), b[5], body[:min(el, len(body))], key, val,
			binary.BigEndian.Uint32(b[12:]), cas)
		b = b[memcached.HeaderLen+bl:]
	}
	if len(b) > 0 {
		fmt.Fprintf(&sb, "raw %q\n", b)
	}
	return sb.String()
}

func startEmbedded(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func haveBinary(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
