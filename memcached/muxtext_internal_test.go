package memcached

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckTextCommand(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen)
	tests := []struct {
		cmd  string
		kind textKind
		ok   bool
	}{
		{"get k\r\n", kindGet, true},
		{"gets k\r\n", kindGet, true},
		{"get " + long + "\r\n", kindGet, true},
		{"get \xe6\x97\xa5\r\n", kindGet, true},
		{"set k 0 0 1\r\nv\r\n", kindStore, true},
		{"set k 4294967295 -2147483648 0\r\n\r\n", kindStore, true},
		{"add k 1 2147483647 3\r\na\r\n\r\n", kindStore, true},
		{"replace k 0 0 1\r\nv\r\n", kindStore, true},
		{"append k 0 0 1\r\nv\r\n", kindStore, true},
		{"prepend k 0 0 1\r\nv\r\n", kindStore, true},
		{"cas k 0 0 1 18446744073709551615\r\nv\r\n", kindStore, true},
		{"delete k\r\n", kindDelete, true},
		{"incr k 18446744073709551615\r\n", kindCounter, true},
		{"decr k 0\r\n", kindCounter, true},
		{"touch k -1\r\n", kindTouch, true},

		// Not data commands, or not single-reply ones.
		{"stats\r\n", 0, false},
		{"version\r\n", 0, false},
		{"flush_all\r\n", 0, false},
		{"quit\r\n", 0, false},
		{"verbosity 1\r\n", 0, false},
		{"gat 0 k\r\n", 0, false},
		{"get a b\r\n", 0, false},
		// Keys memcached would split, refuse, or read as the noreply flag.
		{"get " + long + "k\r\n", 0, false},
		{"get \r\n", 0, false},
		{"get  k\r\n", 0, false},
		{"get k \r\n", 0, false},
		{"get k\tx\r\n", 0, false},
		{"get k\x7f\r\n", 0, false},
		{"delete noreply\r\n", 0, false},
		{"set noreply 0 0 1\r\nv\r\n", 0, false},
		// Silenced replies and extra words.
		{"set k 0 0 1 noreply\r\nv\r\n", 0, false},
		{"delete k noreply\r\n", 0, false},
		{"delete k 0\r\n", 0, false},
		{"incr k 1 noreply\r\n", 0, false},
		{"touch k 0 noreply\r\n", 0, false},
		{"set k 0 0 1 5\r\nv\r\n", 0, false},
		{"cas k 0 0 1\r\nv\r\n", 0, false},
		// Numbers memcached refuses without swallowing the data block.
		{"set k -1 0 1\r\nv\r\n", 0, false},
		{"set k 4294967296 0 1\r\nv\r\n", 0, false},
		{"set k 1.5 0 1\r\nv\r\n", 0, false},
		{"set k 0 2147483648 1\r\nv\r\n", 0, false},
		{"set k 0 -2147483649 1\r\nv\r\n", 0, false},
		{"set k 0 x 1\r\nv\r\n", 0, false},
		{"set k 0 0 +1\r\nv\r\n", 0, false},
		{"cas k 0 0 1 -1\r\nv\r\n", 0, false},
		{"incr k x\r\n", 0, false},
		{"incr k -1\r\n", 0, false},
		{"incr k 18446744073709551616\r\n", 0, false},
		{"touch k 1e3\r\n", 0, false},
		// Lengths that are not the data block's, and trailing bytes.
		{"set k 0 0 2\r\nv\r\n", 0, false},
		{"set k 0 0 0\r\nv\r\n", 0, false},
		{"set k 0 0 1\r\nvv\n", 0, false},
		{"set k 0 0 1\r\nv\r\nget k\r\n", 0, false},
		{"get k\r\nget k\r\n", 0, false},
		{"get k\r\n\r\n", 0, false},
		{"get k\n", 0, false},
		{"get k", 0, false},
		{"", 0, false},
		{"\r\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.cmd), func(t *testing.T) {
			kind, err := textCommandKind([]byte(tt.cmd))
			if !tt.ok {
				assert.ErrorIs(t, err, ErrUnshareable)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.kind, kind)
		})
	}
}

// reencode writes the command CheckTextCommand parsed back with the
// package's encoders: an accepted command must be exactly that.
func reencode(t *testing.T, cmd []byte) []byte {
	line, data, _ := bytes.Cut(cmd, crlf)
	w := strings.Split(string(line), " ")
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err, s)
		return n
	}
	unum := func(s string) uint64 {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, s)
		return n
	}
	switch w[0] {
	case "get", "gets":
		return AppendRetrievalCommand(nil, w[0], w[1])
	case "delete":
		return AppendDeleteCommand(nil, w[1], false)
	case "incr", "decr":
		return AppendCounterCommand(nil, w[0], w[1], unum(w[2]), false)
	case "touch":
		return AppendTouchCommand(nil, w[1], num(w[2]), false)
	}
	var cas uint64
	if w[0] == "cas" {
		cas = unum(w[5])
	}
	value := data[:len(data)-2]
	return AppendStorageCommand(nil, w[0], w[1], uint32(unum(w[2])), num(w[3]), value, cas, false)
}

// FuzzCheckTextCommand: whatever CheckTextCommand accepts is one canonical
// command, exactly as the package's encoders write it, with a key the text
// protocol carries — so the server reads it as one command and answers it
// once.
func FuzzCheckTextCommand(f *testing.F) {
	for _, s := range []string{
		"get k\r\n", "gets k\r\n", "set k 0 0 1\r\nv\r\n", "cas k 1 -1 2 99\r\nab\r\n",
		"delete k\r\n", "incr k 5\r\n", "decr k 0\r\n", "touch k 10\r\n",
		"set k 0 0 1 noreply\r\nv\r\n", "get a b\r\n", "set k 00 0 1\r\nv\r\n", "incr k 007\r\n",
		"set k 0 -0 0\r\n\r\n", "touch k -2147483648\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		kind, err := textCommandKind(cmd)
		if err != nil {
			if !errors.Is(err, ErrUnshareable) {
				t.Fatalf("%q: %v is not ErrUnshareable", cmd, err)
			}
			return
		}
		line, _, _ := bytes.Cut(cmd, crlf)
		w := bytes.Split(line, []byte(" "))
		if err := CheckKey(string(w[1]), true); err != nil || string(w[1]) == "noreply" {
			t.Fatalf("%q accepted with key %q", cmd, w[1])
		}
		for _, word := range w {
			if bytes.Equal(word, []byte("noreply")) {
				t.Fatalf("%q accepted with noreply", cmd)
			}
		}
		got := reencode(t, cmd)
		if k2, err := textCommandKind(got); err != nil || k2 != kind {
			t.Fatalf("%q: its encoding %q is not accepted alike: %v", cmd, got, err)
		}
		// The same words (numbers may be written with leading zeros or as
		// -0, which memcached reads as the plain number) and the same data.
		gl, gd, _ := bytes.Cut(got, crlf)
		_, cd, _ := bytes.Cut(cmd, crlf)
		gw := bytes.Split(gl, []byte(" "))
		if len(gw) != len(w) || !bytes.Equal(gd, cd) {
			t.Fatalf("%q accepted but encodes as %q", cmd, got)
		}
		for i := range w {
			if bytes.Equal(w[i], gw[i]) {
				continue
			}
			a, errA := strconv.ParseInt(string(w[i]), 10, 64)
			b, errB := strconv.ParseInt(string(gw[i]), 10, 64)
			ua, errUA := strconv.ParseUint(string(w[i]), 10, 64)
			ub, errUB := strconv.ParseUint(string(gw[i]), 10, 64)
			if !(errA == nil && errB == nil && a == b) && !(errUA == nil && errUB == nil && ua == ub) {
				t.Fatalf("%q: word %q encodes as %q", cmd, w[i], gw[i])
			}
		}
	})
}

// FuzzReadTextReply feeds any bytes to the reply reader of every kind: it
// must not panic, an item never exceeds the limit, and a reply that leaves
// the stream in step ends exactly where its last line does.
func FuzzReadTextReply(f *testing.F) {
	for _, s := range []string{
		"END\r\n", "VALUE k 1 3\r\nabc\r\nEND\r\n", "VALUE k 0 1 77\r\nx\r\nEND\r\nSTORED\r\n",
		"STORED\r\n", "NOT_STORED\r\n", "EXISTS\r\n", "NOT_FOUND\r\n", "DELETED\r\n", "TOUCHED\r\n",
		"42\r\n", "CLIENT_ERROR bad\r\n", "SERVER_ERROR object too large for cache\r\n", "ERROR\r\n",
		"VALUE k 0 5\r\nab\r\n", "VALUE k 0 2\r\nabEND\r\n", "VALUE k 0 99999999999\r\n",
		"VALUE k 0 1\r\nx\r\nVALUE k 0 1\r\ny\r\nEND\r\n",
	} {
		for k := range kindVersion {
			f.Add([]byte(s), uint8(k))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, k uint8) {
		kind := []textKind{kindStore, kindGet, kindDelete, kindCounter, kindTouch}[int(k)%5]
		rd := bytes.NewReader(in)
		br := bufio.NewReaderSize(rd, 16)
		var r TextReply
		var tv TextValue
		const limit = 64
		after, err := readTextReply(br, kind, &r, &tv, limit)
		if err != nil {
			return
		}
		if r.Hit && (kind != kindGet || len(r.Value) > limit) {
			t.Fatalf("kind %d: item of %d bytes", kind, len(r.Value))
		}
		if bytes.ContainsAny(r.Line, "\n") {
			t.Fatalf("line %q holds a newline", r.Line)
		}
		if after != nil {
			if !errors.Is(after, ErrProtocol) {
				t.Fatalf("after %v is not ErrProtocol", after)
			}
			return
		}
		consumed := len(in) - rd.Len() - br.Buffered()
		if !bytes.HasSuffix(in[:consumed], append(append([]byte(nil), r.Line...), crlf...)) {
			t.Fatalf("kind %d: reply %q did not end at its line %q", kind, in[:consumed], r.Line)
		}
	})
}
