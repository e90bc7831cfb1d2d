package server

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"luaserve/internal/mctest"
	"luaserve/memcached"
)

// The differential suite: every case is a list of raw requests sent over one
// connection, to Debian's memcached 1.6.18 and to the embedded server, each
// freshly started; the replies must be identical after masking only what
// must differ (CAS uniques, volatile stats).

// step sends bytes after an optional pause. gen, when set, builds the bytes
// from the replies to the earlier steps (to reuse a CAS, say).
type step struct {
	data  string
	gen   func(prev []string) string
	pause time.Duration
}

type wireCase struct {
	name  string
	bin   bool
	flags []string // memcached flags, mirrored into Config
	steps []step
	// attempts > 1 reruns a case that differs, for conversations where
	// memcached itself is not deterministic (see randomCases).
	attempts int
	// unstable lists stats masked on top of the usual ones.
	unstable []string
	// unpad hides whether incr/decr rewrote a number in place (padded
	// with spaces) or replaced the item.
	unpad bool
}

func s(data string) step { return step{data: data} }
func b(rs ...req) step   { return step{data: string(pkts(rs...))} }
func after(d time.Duration, st step) step {
	st.pause = d
	return st
}

var textCASRE = regexp.MustCompile(`VALUE \S+ \d+ \d+ (\d+)\r\n`)

// lastTextCAS is the CAS of the last VALUE line in the replies so far.
func lastTextCAS(prev []string) string {
	all := strings.Join(prev, "")
	m := textCASRE.FindAllStringSubmatch(all, -1)
	if len(m) == 0 {
		return "0"
	}
	return m[len(m)-1][1]
}

// lastBinCAS is the CAS of the last binary reply that carried one.
func lastBinCAS(prev []string) uint64 {
	var cas uint64
	for _, p := range prev {
		bs := []byte(p)
		for len(bs) >= memcached.HeaderLen {
			bl := int(binary.BigEndian.Uint32(bs[8:]))
			if c := binary.BigEndian.Uint64(bs[16:]); c != 0 {
				cas = c
			}
			if len(bs) < memcached.HeaderLen+bl {
				break
			}
			bs = bs[memcached.HeaderLen+bl:]
		}
	}
	return cas
}

func key(n int) string { return strings.Repeat("k", n) }

// Largest value memcached -I 1m accepts under a one-byte key with flags 0:
// 1 MiB minus its 48-byte item header, 8-byte CAS, key+NUL and CRLF.
const maxValue1 = 1<<20 - 48 - 8 - 2 - 2

func textCases() []wireCase {
	big := strings.Repeat("x", maxValue1)
	return []wireCase{
		{name: "set get gets multi", steps: []step{
			s("set a 5 0 3\r\nabc\r\nset b 0 0 0\r\n\r\nget a\r\nget a b c\r\ngets a b\r\nget a a\r\n"),
		}},
		{name: "storage verbs", steps: []step{
			s("add a 0 0 1\r\n1\r\nadd a 0 0 1\r\n2\r\nreplace a 7 0 1\r\n3\r\nreplace z 0 0 1\r\n4\r\n"),
			s("append a 9 0 2\r\nxy\r\nprepend a 9 0 2\r\nvw\r\nappend z 0 0 1\r\n1\r\nprepend z 0 0 1\r\n1\r\nget a z\r\n"),
		}},
		{name: "noreply storage", steps: []step{
			s("set a 0 0 1 noreply\r\n1\r\nadd a 0 0 1 noreply\r\n2\r\nreplace z 0 0 1 noreply\r\n3\r\nappend a 0 0 1 noreply\r\n4\r\nprepend a 0 0 1 noreply\r\n5\r\ncas a 0 0 1 1 noreply\r\n6\r\nget a\r\n"),
		}},
		{name: "cas", steps: []step{
			s("cas a 0 0 1 5\r\nx\r\nset a 0 0 1\r\n1\r\ngets a\r\n"),
			{gen: func(prev []string) string {
				c := lastTextCAS(prev)
				return "cas a 0 0 1 " + c + "1\r\nx\r\ncas a 0 0 1 0\r\nx\r\ncas a 3 0 1 " + c + "\r\ny\r\ncas a 0 0 1 " + c + "\r\nz\r\ngets a\r\n"
			}},
			s("cas a 0 0 1 abc\r\nx\r\ncas a 0 0 1 -1\r\nx\r\ncas a 0 0 1\r\ncas a 0 0 1 1 noreply extra\r\n"),
		}},
		{name: "incr decr", steps: []step{
			s("set n 0 0 3\r\n100\r\ndecr n 1\r\nget n\r\nincr n 18446744073709551615\r\nget n\r\ndecr n 1000\r\n"),
			s("set n 0 0 2\r\n99\r\nincr n 1\r\nget n\r\nset m 0 0 20\r\n18446744073709551615\r\nincr m 2\r\nget m\r\n"),
			s("set s 0 0 3\r\nabc\r\nincr s 1\r\nincr s x\r\nincr s -1\r\nincr nokey 1\r\ndecr nokey 1\r\ndecr s 1 noreply\r\nincr s 1.5\r\n"),
			s("set e 0 0 0\r\n\r\nincr e 1\r\nset neg 0 0 2\r\n-1\r\nincr neg 1\r\nset sp 0 0 3\r\n 7 \r\nincr sp 1\r\nget sp\r\nset big 0 0 21\r\n123456789012345678901\r\nincr big 1\r\n"),
			s("incr\r\nincr a\r\nincr a 1 2 3\r\nincr " + key(251) + " 1\r\ndecr n +5\r\nincr n 18446744073709551616\r\n"),
		}},
		{name: "delete", steps: []step{
			s("set a 0 0 1\r\n1\r\ndelete a\r\ndelete a\r\ndelete a 0\r\ndelete a 1\r\ndelete a noreply\r\ndelete a 0 noreply\r\ndelete a x y z\r\ndelete\r\ndelete " + key(251) + "\r\n"),
		}},
		{name: "touch gat gats", steps: []step{
			s("touch k\r\ntouch k x\r\ntouch nokey 10\r\nset t 3 0 1\r\na\r\ntouch t 10\r\ntouch t 10 noreply\r\ngat 10 t nokey\r\ngats x t\r\ngat 10\r\ngats 0 t\r\ntouch " + key(251) + " 1\r\ngat 1 " + key(251) + "\r\n"),
			s("gat -1 t\r\nget t\r\n"),
		}},
		{name: "flush_all forms", steps: []step{
			s("set a 0 0 1\r\n1\r\nflush_all\r\nget a\r\nset a 0 0 1\r\n1\r\nget a\r\nflush_all 0\r\nflush_all -1\r\nflush_all x\r\nflush_all noreply\r\nflush_all 0 noreply\r\nflush_all 1 2\r\nflush_all 1 2 3\r\n"),
		}},
		{name: "flush_all delay", steps: []step{
			s("set a 0 0 1\r\n1\r\nflush_all 3\r\nget a\r\n"),
			after(3500*time.Millisecond, s("get a\r\nset b 0 0 1\r\n2\r\nget b\r\n")),
		}},
		{name: "ttl", steps: []step{
			s("set r 0 2 1\r\n1\r\nset n 0 -1 1\r\n1\r\nset p 0 2592001 1\r\n1\r\nset q 0 1000000000 1\r\n1\r\nset w 0 4000000000 1\r\n1\r\nget r n p q w\r\n"),
			{gen: func([]string) string {
				return "set abs 0 " + strconv.FormatInt(time.Now().Unix()+100, 10) + " 1\r\nx\r\nget abs\r\n"
			}},
			after(3*time.Second, s("get r abs\r\n")),
		}},
		{name: "too large", steps: []step{
			s("set k 0 0 1\r\nv\r\nset k 0 0 " + strconv.Itoa(maxValue1+1) + "\r\n" + big + "x\r\nget k\r\n"),
			s("set k 0 0 " + strconv.Itoa(maxValue1) + "\r\n" + big + "\r\nset k 1 0 " + strconv.Itoa(maxValue1-3) + "\r\n" + big[3:] + "\r\nget q\r\n"),
			s("add k 0 0 " + strconv.Itoa(maxValue1+1) + " noreply\r\n" + big + "x\r\nappend k 0 0 1\r\nx\r\nget q\r\n"),
		}},
		{name: "incr chunked value", steps: []step{
			s("set n 0 0 524228\r\n5" + strings.Repeat(" ", 524227) + "\r\nincr n 1\r\nset n 0 0 524229\r\n5" + strings.Repeat(" ", 524228) + "\r\nincr n 1\r\n"),
		}},
		{name: "item size 2m", flags: []string{"-I", "2m", "-m", "8"}, steps: []step{
			s("set k 0 0 " + strconv.Itoa(2<<20-60) + "\r\n" + strings.Repeat("y", 2<<20-60) + "\r\nset k 0 0 " + strconv.Itoa(2<<20-59) + "\r\n" + strings.Repeat("y", 2<<20-59) + "\r\n"),
			s("stats\r\nstats settings\r\n"),
		}},
		{name: "hostile length", steps: []step{
			s("set k 0 0 999999999999\r\nabc\r\nset k 0 0 4294967297\r\nx\r\n"),
			s("get a\r\nset k 0 0 99999999\r\nabc"),
		}},
		{name: "partial value waits", steps: []step{
			s("get a\r\nset k 0 0 5\r\nab"),
			s("cde\r\nget k\r\n"),
		}},
		{name: "long keys", steps: []step{
			s("set " + key(250) + " 0 0 1\r\n1\r\nget " + key(250) + "\r\nset " + key(251) + " 0 0 1\r\n1\r\n"),
			s("get a " + key(251) + " b\r\ngets " + key(251) + "\r\n"),
		}},
		{name: "bad data chunk", steps: []step{
			s("set k 0 0 1\r\nab\r\nget k\r\nset k 0 0 1 noreply\r\nab\r\nset k 0 0 3\r\nabcde\r\n"),
		}},
		{name: "malformed lines", steps: []step{
			s("\r\nx\r\nxx\r\n\n  \r\nSET a 0 0 1\r\nget\r\ngetx a\r\nset k 0 0\r\nset k 0 0 1 noreply extra\r\nset k -1 0 1\r\nx\r\nset k 0 0 -1\r\n"),
			s("set k 4294967296 0 1\r\na\r\nget k\r\nset a 0 0 1\t\r\n1\r\nset a 0 0 +1\r\n1\r\nset  a  0 0 1\r\n1\r\nset a 0 0 1\n1\r\nget a\n"),
			s("get a\x00b\r\nstats foo\r\nbogus\r\nmn\r\nms\r\nmx\r\nme\r\nshutdown\r\nsx / HTTP/1.1\r\n"),
		}},
		{name: "http closes", steps: []step{s("GET / HTTP/1.1\r\nversion\r\n")}},
		{name: "version verbosity quit", steps: []step{
			s("version\r\nverbosity\r\nverbosity 1\r\nverbosity x\r\nverbosity 1 noreply\r\nverbosity noreply\r\nverbosity 1 2 3\r\nquit\r\nversion\r\n"),
		}},
		{name: "overlong line closes", steps: []step{
			s("version\r\n"),
			s("set " + strings.Repeat("x", 3000)),
		}},
		{name: "overlong get line", steps: []step{
			s("set a 0 0 1\r\n1\r\nget " + strings.Repeat("b ", 2000)),
			s("a\r\n"),
		}},
		{name: "many keys", steps: []step{
			s("set a 0 0 1\r\n1\r\nget a" + strings.Repeat(" b", 30) + " a\r\ngets" + strings.Repeat(" a", 40) + "\r\n"),
		}},
		{name: "pipelined mixed", steps: []step{
			s("set a 0 0 1\r\n1\r\nincr a 5\r\nget a\r\nappend a 0 0 1\r\n0\r\nget a\r\ndelete a\r\nadd a 0 0 2\r\nxy\r\ntouch a 100\r\ngets zz\r\nversion\r\ndecr a 1\r\nget a\r\n"),
		}},
		{name: "edge forms", steps: []step{
			s("set k 0 0 1 \r\n1\r\ngets\r\nset r 0 2592000 1\r\n1\r\nget r\r\nset t 0 0 1\r\n1\r\ntouch t -1\r\nget t\r\ndelete t\r\n"),
			s("set n 0 0 2\r\n\t5\r\nincr n 1\r\nset n 0 0 3\r\n5\t\t\r\nincr n 1\r\nset n 0 0 2\r\n5x\r\nincr n 1\r\ncas n 0 0 1 1 noreply\r\n1\r\n"),
			s("flush_all\r\nadd k 0 0 1\r\n2\r\nreplace zz 0 0 1\r\n1\r\nappend k 0 0 1\r\n3\r\nget k\r\n"),
		}},
		{name: "twenty per batch", steps: []step{
			s(strings.Repeat("version\r\n", 25) + "get " + key(251) + "\r\n"),
			s(strings.Repeat("touch a 1\r\n", 19) + "get " + key(251) + "\r\n"),
		}},
		{name: "stats sub", steps: []step{
			s("stats items\r\nstats slabs\r\nstats sizes\r\nstats conns x\r\nstats reset now\r\n"),
			s("set a 0 0 1\r\n1\r\nstats items\r\nstats slabs\r\n"),
		}},
		{name: "stats counters", steps: []step{
			s("set a 0 0 1\r\n1\r\nget a b\r\nincr a 1\r\nincr b 1\r\ndecr a 1\r\ndelete b\r\ntouch a 0\r\ntouch b 0\r\ngat 0 a b\r\nflush_all\r\nget a\r\n"),
			s("stats\r\n"),
			s("stats reset\r\nstats detail\r\nstats detail on\r\nstats detail dump\r\nstats detail off\r\nstats\r\n"),
			s("stats settings\r\n"),
		}},
	}
}

func binaryCases() []wireCase {
	get := func(k string) req { return breq(memcached.OpGet, k, nil, "") }
	set := func(k, v string) req { return breq(memcached.OpSet, k, setExtras(0, 0), v) }
	noop := breq(memcached.OpNoop, "", nil, "")
	version := breq(memcached.OpVersion, "", nil, "")
	big := strings.Repeat("v", maxValue1+1)
	return []wireCase{
		{name: "gets", bin: true, steps: []step{
			b(get("nokey").withOpaque(1), breq(memcached.OpGetK, "nokey", nil, "").withOpaque(2),
				breq(memcached.OpGetQ, "nokey", nil, "").withOpaque(3), breq(memcached.OpGetKQ, "nokey", nil, "").withOpaque(4), noop.withOpaque(5)),
			b(breq(memcached.OpSet, "k", setExtras(7, 0), "val").withOpaque(1), get("k").withOpaque(2),
				breq(memcached.OpGetK, "k", nil, "").withOpaque(3), breq(memcached.OpGetQ, "k", nil, "").withOpaque(4),
				breq(memcached.OpGetKQ, "k", nil, "").withOpaque(5), noop.withOpaque(6)),
		}},
		{name: "storage failures", bin: true, steps: []step{
			b(set("k", "v"), breq(memcached.OpAdd, "k", setExtras(0, 0), "v"), breq(memcached.OpReplace, "missing", setExtras(0, 0), "v"),
				breq(memcached.OpAppend, "missing", nil, "v"), breq(memcached.OpPrepend, "missing", nil, "v")),
			b(breq(memcached.OpSetQ, "k", setExtras(0, 0), "v2").withOpaque(8), breq(memcached.OpAddQ, "k", setExtras(0, 0), "v3").withOpaque(9),
				breq(memcached.OpReplaceQ, "missing", setExtras(0, 0), "v3").withOpaque(10), breq(memcached.OpAppendQ, "missing", nil, "x").withOpaque(11),
				breq(memcached.OpPrependQ, "k", nil, "p").withOpaque(12), breq(memcached.OpAppendQ, "k", nil, "a").withOpaque(13),
				breq(memcached.OpAddQ, "new", setExtras(3, 0), "n").withOpaque(14), get("k"), get("new"), noop),
		}},
		{name: "cas", bin: true, steps: []step{
			b(set("k", "v"), set("k", "w").withCAS(12345), breq(memcached.OpSet, "missing", setExtras(0, 0), "v").withCAS(5),
				breq(memcached.OpAdd, "missing", setExtras(0, 0), "v").withCAS(5), breq(memcached.OpDelete, "k", nil, "").withCAS(999)),
			b(get("k")),
			{gen: func(prev []string) string {
				c := lastBinCAS(prev)
				return string(pkts(set("k", "x").withCAS(c), get("k"), breq(memcached.OpAppend, "k", nil, "y").withCAS(c),
					breq(memcached.OpDelete, "k", nil, "").withCAS(c+1000), noop))
			}},
			b(get("k")),
			{gen: func(prev []string) string {
				c := lastBinCAS(prev)
				return string(pkts(breq(memcached.OpAppend, "k", nil, "z").withCAS(c), get("k"), breq(memcached.OpDelete, "k", nil, "").withCAS(lastBinCAS(prev)+1), get("k")))
			}},
		}},
		{name: "delete", bin: true, steps: []step{
			b(set("k", "v"), breq(memcached.OpDelete, "missing", nil, ""), breq(memcached.OpDeleteQ, "missing", nil, "").withOpaque(3),
				breq(memcached.OpDeleteQ, "k", nil, "").withOpaque(4), get("k"), noop),
		}},
		{name: "incr decr", bin: true, steps: []step{
			b(breq(memcached.OpIncrement, "n", incrExtras(1, 10, 0), ""), breq(memcached.OpIncrement, "n", incrExtras(5, 10, 0), ""),
				breq(memcached.OpDecrement, "n", incrExtras(100, 10, 0), ""), breq(memcached.OpIncrement, "none", incrExtras(1, 10, 0xffffffff), ""),
				breq(memcached.OpDecrement, "none", incrExtras(1, 10, 0xffffffff), ""), get("n")),
			b(set("s", "abc"), breq(memcached.OpIncrement, "s", incrExtras(1, 0, 0), ""), breq(memcached.OpIncrementQ, "n", incrExtras(1, 0, 0), ""),
				breq(memcached.OpIncrementQ, "s", incrExtras(1, 0, 0), "").withOpaque(7), breq(memcached.OpIncrement, "n", incrExtras(1, 0, 0), "").withCAS(1),
				breq(memcached.OpDecrementQ, "zz", incrExtras(1, 0, 0xffffffff), "").withOpaque(8), noop),
			b(set("w", "18446744073709551615"), breq(memcached.OpIncrement, "w", incrExtras(2, 0, 0), ""), get("w"),
				set("sp", " 5"), breq(memcached.OpIncrement, "sp", incrExtras(1, 0, 0), ""), get("sp"),
				set("e", ""), breq(memcached.OpIncrement, "e", incrExtras(1, 0, 0), ""),
				breq(memcached.OpIncrement, "init", incrExtras(1, 18446744073709551615, 0), ""), get("init")),
		}},
		{name: "version noop quit", bin: true, steps: []step{
			b(version.withOpaque(7), noop.withOpaque(8), breq(memcached.OpQuit, "", nil, "").withOpaque(3), version),
		}},
		{name: "quitq", bin: true, steps: []step{b(breq(memcached.OpQuitQ, "", nil, "").withOpaque(3), version)}},
		{name: "verbosity quirk", bin: true, steps: []step{
			b(breq(memcached.OpVerbosity, "", nil, ""), version),
			b(breq(memcached.OpVerbosity, "", u32(1), ""), version),
			b(noop),
		}},
		{name: "unknown opcode swallows", bin: true, steps: []step{
			b(breq(0x30, "abc", nil, "def"), version),
			b(noop, noop),
		}},
		{name: "sasl off", bin: true, steps: []step{
			b(breq(memcached.OpSASLList, "", nil, ""), version, breq(memcached.OpSASLAuth, "PLAIN", nil, "\x00u\x00p"), version,
				breq(memcached.OpSASLStep, "PLAIN", nil, ""), version),
		}},
		{name: "flush", bin: true, steps: []step{
			b(set("f", "v"), breq(memcached.OpFlush, "", nil, ""), get("f"), set("f", "v"), breq(memcached.OpFlushQ, "", u32(3), "").withOpaque(5), get("f"), noop),
			after(3500*time.Millisecond, b(get("f"), breq(memcached.OpFlush, "x", nil, ""), version)),
		}},
		{name: "touch gat", bin: true, steps: []step{
			b(breq(memcached.OpSet, "t", setExtras(3, 0), "tv"),
				breq(memcached.OpTouch, "t", u32(100), ""), breq(memcached.OpGAT, "t", u32(100), ""), breq(memcached.OpGATQ, "t", u32(100), ""),
				breq(memcached.OpGATK, "t", u32(100), ""), breq(memcached.OpGATKQ, "t", u32(100), ""),
				breq(memcached.OpTouch, "no", u32(100), ""), breq(memcached.OpGAT, "no", u32(100), ""), breq(memcached.OpGATQ, "no", u32(100), ""),
				breq(memcached.OpGATK, "no", u32(100), ""), breq(memcached.OpGATKQ, "no", u32(100), ""), noop),
			b(breq(memcached.OpTouch, "t", u32(1), ""), get("t")),
			after(2500*time.Millisecond, b(get("t"))),
		}},
		{name: "ttl", bin: true, steps: []step{
			b(breq(memcached.OpSet, "a", setExtras(0, 1000000000), "v"), get("a"), breq(memcached.OpSet, "b", setExtras(0, 2), "v"), get("b")),
			after(3*time.Second, b(get("b"))),
		}},
		{name: "too large", bin: true, steps: []step{
			b(set("k", "v"), set("k", big), version, get("k")),
			b(set("k", big[1:]), breq(memcached.OpAppend, "k", nil, "zz"), breq(memcached.OpSetQ, "q", setExtras(0, 0), big), noop),
		}},
		{name: "hostile bodylen", bin: true, steps: []step{
			b(get("a"), set("k", "v").withBody(0x7fffffff)),
			b(version),
		}},
		{name: "hostile bodylen max", bin: true, steps: []step{
			b(get("a"), set("k", "v").withBody(0xffffffff)),
		}},
		{name: "stat", bin: true, steps: []step{
			b(set("a", "1"), get("a"), get("b"), breq(memcached.OpStat, "", nil, "")),
			b(breq(memcached.OpStat, "settings", nil, "").withOpaque(4)),
			b(breq(memcached.OpStat, "bogus", nil, ""), breq(memcached.OpStat, "reset", nil, "").withOpaque(9), breq(memcached.OpStat, "detail on", nil, ""),
				breq(memcached.OpStat, "detail x", nil, ""), version),
		}},
		{name: "stat counters", bin: true, steps: []step{
			b(set("a", "1"), get("a"), get("b"), breq(memcached.OpGAT, "a", u32(0), ""), breq(memcached.OpGATK, "b", u32(0), ""),
				breq(memcached.OpTouch, "a", u32(0), ""), breq(memcached.OpGetQ, "b", nil, ""), breq(memcached.OpIncrement, "a", incrExtras(1, 0, 0), ""),
				breq(memcached.OpIncrement, "c", incrExtras(1, 0, 0xffffffff), ""), breq(memcached.OpIncrement, "c", incrExtras(1, 0, 0), ""),
				breq(memcached.OpDelete, "zz", nil, ""), breq(memcached.OpAppend, "a", nil, "0"), set("big", strings.Repeat("v", maxValue1+1)),
				breq(memcached.OpStat, "", nil, "")),
		}},
		{name: "quiet pipeline", bin: true, steps: []step{
			b(breq(memcached.OpSetQ, "a", setExtras(1, 0), "1").withOpaque(1), breq(memcached.OpAddQ, "a", setExtras(0, 0), "2").withOpaque(2),
				breq(memcached.OpGetQ, "a", nil, "").withOpaque(3), breq(memcached.OpGetKQ, "zz", nil, "").withOpaque(4),
				breq(memcached.OpIncrementQ, "a", incrExtras(5, 0, 0), "").withOpaque(5), breq(memcached.OpDeleteQ, "zz", nil, "").withOpaque(6),
				breq(memcached.OpGetKQ, "a", nil, "").withOpaque(7), breq(memcached.OpReplaceQ, "a", setExtras(2, 0), "9").withOpaque(8),
				breq(memcached.OpPrependQ, "a", nil, "8").withOpaque(9), breq(memcached.OpGATKQ, "a", u32(0), "").withOpaque(10),
				breq(memcached.OpFlushQ, "", nil, "").withOpaque(11), breq(memcached.OpGetQ, "a", nil, "").withOpaque(12), noop.withOpaque(13)),
		}},
		{name: "touch body past extras", bin: true, steps: []step{
			b(set("t", "v"), breq(memcached.OpTouch, "t", u32(0), string(noop.bytes())).withBody(4+1+int64(memcached.HeaderLen)), version),
		}},
		{name: "datatype set", bin: true, steps: []step{
			{data: func() string { p := set("d", "v").bytes(); p[5] = 1; return string(p) }()},
			b(get("d"), version),
		}},
		{name: "stat detail dump", bin: true, steps: []step{
			b(breq(memcached.OpStat, "detail dump", nil, ""), breq(memcached.OpStat, "detail", nil, ""), version),
		}},
		{name: "stat body past key", bin: true, steps: []step{
			b(breq(memcached.OpStat, "", nil, string(noop.bytes())).withBody(int64(memcached.HeaderLen)).withKeylen(0)),
		}},
	}
}

// protocolErrorCases each end the connection, so each gets its own case.
func protocolErrorCases() []wireCase {
	version := breq(memcached.OpVersion, "", nil, "")
	bad := map[string]req{
		"keylen past body":   breq(memcached.OpGet, "abc", nil, "").withKeylen(10).withBody(3),
		"get extras":         breq(memcached.OpGet, "abc", []byte("1234"), ""),
		"get empty key":      breq(memcached.OpGet, "", nil, ""),
		"key 251":            breq(memcached.OpGet, key(251), nil, ""),
		"key 16000":          breq(memcached.OpGet, key(16000), nil, ""),
		"key 20000":          breq(memcached.OpGet, key(20000), nil, ""),
		"set no extras":      breq(memcached.OpSet, "k", nil, "v"),
		"set empty key":      breq(memcached.OpSet, "", setExtras(0, 0), "v"),
		"version body":       breq(memcached.OpVersion, "x", nil, ""),
		"noop body":          breq(memcached.OpNoop, "", nil, "xy"),
		"stat extras":        breq(memcached.OpStat, "", []byte("12"), ""),
		"append extras":      breq(memcached.OpAppend, "k", []byte("12"), "v"),
		"incr bad extras":    breq(memcached.OpIncrement, "k", []byte("12"), ""),
		"incr with value":    breq(memcached.OpIncrement, "k", incrExtras(1, 0, 0), "v"),
		"touch no extras":    breq(memcached.OpTouch, "k", nil, ""),
		"delete body":        breq(memcached.OpDelete, "k", nil, "v"),
		"quit body":          breq(memcached.OpQuit, "", nil, "v"),
		"flush key":          breq(memcached.OpFlush, "k", nil, ""),
		"flush extras 3":     breq(memcached.OpFlush, "", []byte("123"), ""),
		"sasl list body":     breq(memcached.OpSASLList, "k", nil, ""),
		"sasl auth no key":   breq(memcached.OpSASLAuth, "", nil, "v"),
		"bad magic":          breq(memcached.OpVersion, "", nil, "").withMagic(0x81),
		"getq extras":        breq(memcached.OpGetQ, "abc", []byte("1"), ""),
		"deleteq with value": breq(memcached.OpDeleteQ, "k", nil, "v").withOpaque(4),
	}
	var cs []wireCase
	for name, r := range bad {
		cs = append(cs, wireCase{name: "protocol error " + name, bin: true, steps: []step{b(version, r, version)}})
	}
	return cs
}

// configFor mirrors the memcached flags a case uses.
func configFor(t *testing.T, flags []string) Config {
	var cfg Config
	for i := 0; i < len(flags); i += 2 {
		v := flags[i+1]
		switch flags[i] {
		case "-m":
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			cfg.MaxBytes = int64(n) << 20
		case "-I":
			n, err := strconv.Atoi(strings.TrimRight(v, "km"))
			require.NoError(t, err)
			switch {
			case strings.HasSuffix(v, "m"):
				n <<= 20
			case strings.HasSuffix(v, "k"):
				n <<= 10
			}
			cfg.MaxItemSize = n
		default:
			t.Fatalf("flag %s not mirrored", flags[i])
		}
	}
	return cfg
}

// converse runs the steps on a fresh connection and returns each step's
// raw reply.
func converse(t *testing.T, addr string, steps []step) []string {
	c := dial(t, addr)
	var replies []string
	for _, st := range steps {
		time.Sleep(st.pause)
		data := st.data
		if st.gen != nil {
			data = st.gen(replies)
		}
		if _, err := c.Write([]byte(data)); err != nil {
			replies = append(replies, "<write error>")
			continue
		}
		replies = append(replies, string(readIdle(t, c, 100*time.Millisecond)))
	}
	return replies
}

func runWireCases(t *testing.T, cases []wireCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			norm := func(b []byte) string {
				var s string
				if tc.bin {
					s = maskStats(normBinary(b), tc.unstable, true)
				} else {
					s = maskStats(normText(b), tc.unstable, false)
				}
				if tc.unpad {
					s = unpad(s, tc.bin)
				}
				return s
			}
			for attempt := 1; ; attempt++ {
				real := mctest.Real(t, tc.flags...)
				emb := startEmbedded(t, configFor(t, tc.flags))
				var want, got []string
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); want = converse(t, real.Addr, tc.steps) }()
				go func() { defer wg.Done(); got = converse(t, emb.Addr().String(), tc.steps) }()
				wg.Wait()
				same := true
				for i := range tc.steps {
					if norm([]byte(want[i])) != norm([]byte(got[i])) {
						same = false
					}
				}
				if same {
					return
				}
				if attempt >= max(tc.attempts, 1) {
					for i := range tc.steps {
						require.Equal(t, norm([]byte(want[i])), norm([]byte(got[i])), "step %d", i)
					}
				}
				real.Stop()
				emb.Close()
			}
		})
	}
}

var (
	paddedTextRE = regexp.MustCompile(`(?m)^VALUE (\S+) (\d+) \d+( <cas>)?\r\n(\d+) +\r$`)
	paddedBinRE  = regexp.MustCompile(`val="(\d+) +"`)
)

// unpad rewrites numbers padded by an in-place incr/decr as if the item had
// been replaced.
func unpad(s string, bin bool) string {
	if bin {
		return paddedBinRE.ReplaceAllString(s, `val="$1"`)
	}
	return paddedTextRE.ReplaceAllStringFunc(s, func(m string) string {
		g := paddedTextRE.FindStringSubmatch(m)
		return fmt.Sprintf("VALUE %s %s %d%s\r\n%s\r", g[1], g[2], len(g[4]), g[3], g[4])
	})
}

// maskStats hides the values of the named stats.
func maskStats(s string, names []string, bin bool) string {
	for _, n := range names {
		if bin {
			s = regexp.MustCompile(`key="`+n+`" val="[^"]*"`).ReplaceAllString(s, `key="`+n+`" val="<v>"`)
		} else {
			s = regexp.MustCompile(`STAT `+n+` \d+`).ReplaceAllString(s, "STAT "+n+" <v>")
		}
	}
	return s
}

func TestWireText(t *testing.T)   { runWireCases(t, textCases()) }
func TestWireBinary(t *testing.T) { runWireCases(t, binaryCases()) }
func TestWireBinaryErrors(t *testing.T) {
	runWireCases(t, protocolErrorCases())
}
