package memcached

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTextEncodersGolden(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"set", AppendStorageCommand(nil, "set", "k", 5, 60, []byte("hello"), 0, false), "set k 5 60 5\r\nhello\r\n"},
		{"add noreply", AppendStorageCommand(nil, "add", "k", 0, 0, []byte("v"), 99, true), "add k 0 0 1 noreply\r\nv\r\n"},
		{"cas", AppendStorageCommand(nil, "cas", "k", 1, -1, []byte(""), 12345, false), "cas k 1 -1 0 12345\r\n\r\n"},
		{"prepend max flags", AppendStorageCommand(nil, "prepend", "k", 4294967295, 0, []byte("ab"), 0, false), "prepend k 4294967295 0 2\r\nab\r\n"},
		{"get one", AppendRetrievalCommand(nil, "get", "a"), "get a\r\n"},
		{"gets many", AppendRetrievalCommand(nil, "gets", "a", "b", "c"), "gets a b c\r\n"},
		{"gat", AppendGATCommand(nil, "gat", 100, "a", "b"), "gat 100 a b\r\n"},
		{"gats", AppendGATCommand(nil, "gats", 0, "a"), "gats 0 a\r\n"},
		{"touch", AppendTouchCommand(nil, "k", 30, false), "touch k 30\r\n"},
		{"touch noreply", AppendTouchCommand(nil, "k", 30, true), "touch k 30 noreply\r\n"},
		{"incr", AppendCounterCommand(nil, "incr", "n", 18446744073709551615, false), "incr n 18446744073709551615\r\n"},
		{"decr noreply", AppendCounterCommand(nil, "decr", "n", 2, true), "decr n 2 noreply\r\n"},
		{"delete", AppendDeleteCommand(nil, "k", false), "delete k\r\n"},
		{"delete noreply", AppendDeleteCommand(nil, "k", true), "delete k noreply\r\n"},
		{"flush_all", AppendFlushAllCommand(nil, -1, false), "flush_all\r\n"},
		{"flush_all delay noreply", AppendFlushAllCommand(nil, 10, true), "flush_all 10 noreply\r\n"},
		{"verbosity", AppendVerbosityCommand(nil, 1, false), "verbosity 1\r\n"},
		{"stats slabs", AppendWordsCommand(nil, "stats", "slabs"), "stats slabs\r\n"},
		{"version", AppendWordsCommand(nil, "version"), "version\r\n"},
		{"quit", AppendWordsCommand(nil, "quit"), "quit\r\n"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(tt.got), tt.name)
	}
}

func TestTextEncodersDoNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 256)
	val := []byte("0123456789")
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendStorageCommand(buf[:0], "set", "some:key", 7, 3600, val, 0, false)
		buf = AppendRetrievalCommand(buf[:0], "gets", "some:key")
	})
	assert.Zero(t, allocs)
}

func TestCheckKey(t *testing.T) {
	tests := []struct {
		key       string
		text, bin bool // valid for text / binary
	}{
		{"k", true, true},
		{strings.Repeat("k", 250), true, true},
		{strings.Repeat("k", 251), false, false},
		{"", false, false},
		{"a b", false, true},
		{"a\tb", false, true},
		{"a\r\nb", false, true},
		{"a\x00", false, true},
		{"a\x7f", false, true},
		{"ключ", true, true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.text, CheckKey(tt.key, true) == nil, "text %q", tt.key)
		assert.Equal(t, tt.bin, CheckKey(tt.key, false) == nil, "binary %q", tt.key)
		if err := CheckKey(tt.key, true); err != nil {
			assert.ErrorIs(t, err, ErrMalformedKey)
		}
	}
}

func TestParseReplies(t *testing.T) {
	storage := map[string]error{
		"STORED": nil, "NOT_STORED": ErrNotStored, "EXISTS": ErrCASConflict, "NOT_FOUND": ErrCacheMiss,
	}
	for line, want := range storage {
		assert.Equal(t, want, ParseStorageReply([]byte(line)), line)
	}
	assert.NoError(t, ParseDeleteReply([]byte("DELETED")))
	assert.ErrorIs(t, ParseDeleteReply([]byte("NOT_FOUND")), ErrCacheMiss)
	assert.NoError(t, ParseTouchReply([]byte("TOUCHED")))
	assert.NoError(t, ParseOKReply([]byte("OK")))
	n, err := ParseCounterReply([]byte("18446744073709551615"))
	require.NoError(t, err)
	assert.EqualValues(t, uint64(18446744073709551615), n)
	_, err = ParseCounterReply([]byte("18446744073709551616"))
	assert.ErrorIs(t, err, ErrProtocol)
	v, err := ParseVersionReply([]byte("VERSION 1.6.18"))
	require.NoError(t, err)
	assert.Equal(t, "1.6.18", v)
	name, val, ok := ParseStatLine([]byte("STAT version 1.6.18"))
	assert.True(t, ok)
	assert.Equal(t, "version", string(name))
	assert.Equal(t, "1.6.18", string(val))

	errs := []struct {
		line string
		kind ServerErrorKind
		msg  string
		is   error
	}{
		{"ERROR", KindError, "", nil},
		{"CLIENT_ERROR bad command line format", KindClientError, "bad command line format", nil},
		{"CLIENT_ERROR cannot increment or decrement non-numeric value", KindClientError, "cannot increment or decrement non-numeric value", ErrNonNumeric},
		{"SERVER_ERROR object too large for cache", KindServerError, "object too large for cache", ErrValueTooLarge},
		{"SERVER_ERROR out of memory storing object", KindServerError, "out of memory storing object", nil},
	}
	for _, tt := range errs {
		err := ParseStorageReply([]byte(tt.line))
		var se *ServerError
		require.True(t, errors.As(err, &se), tt.line)
		assert.Equal(t, tt.kind, se.Kind)
		assert.Equal(t, tt.msg, se.Msg)
		assert.Equal(t, tt.line, se.Line(), "the verbatim line lua-resty returns")
		if tt.is != nil {
			assert.ErrorIs(t, err, tt.is)
		}
	}
	assert.ErrorIs(t, ParseStorageReply([]byte("WHAT")), ErrProtocol)
	assert.False(t, Resumable(ParseStorageReply([]byte("WHAT"))))
	assert.False(t, Resumable(&ServerError{Kind: KindError}))
	assert.True(t, Resumable(&ServerError{Kind: KindServerError}))
}

func TestReadTextValue(t *testing.T) {
	wire := "VALUE a 5 3\r\nabc\r\nVALUE b 0 0 77\r\n\r\nVALUE c 1 7\r\nx\r\nEND\r\r\nEND\r\n"
	br := bufio.NewReader(strings.NewReader(wire))
	var v TextValue
	ok, err := ReadTextValue(br, &v, 0)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "a", string(v.Key))
	assert.Equal(t, "abc", string(v.Value))
	assert.EqualValues(t, 5, v.Flags)
	assert.False(t, v.HasCAS)
	ok, err = ReadTextValue(br, &v, 0)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "b", string(v.Key))
	assert.Empty(t, v.Value)
	assert.True(t, v.HasCAS)
	assert.EqualValues(t, 77, v.CAS)
	ok, err = ReadTextValue(br, &v, 0)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "x\r\nEND\r", string(v.Value), "data is framed by length, never by content")
	ok, err = ReadTextValue(br, &v, 0)
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestReadTextValueErrors(t *testing.T) {
	tests := []struct {
		wire string
		want error
	}{
		{"VALUE a 0 3\r\nabcd\r\n", ErrProtocol},
		{"VALUE a 0\r\n", ErrProtocol},
		{"VALUE a x 1\r\na\r\n", ErrProtocol},
		{"VALUE a 0 1 2 3\r\na\r\n", ErrProtocol},
		{"VALUE a 4294967296 1\r\na\r\n", ErrProtocol},
		{"VALUE a 0 99999999999\r\n", ErrValueTooLarge},
		{"VALUE a 0 3\r\nab", io.ErrUnexpectedEOF},
		{"END\n", ErrProtocol},
		{"SERVER_ERROR out of memory\r\n", nil},
		{strings.Repeat("x", 10000) + "\r\n", ErrProtocol},
		{"", io.EOF},
	}
	for _, tt := range tests {
		var v TextValue
		_, err := ReadTextValue(bufio.NewReaderSize(strings.NewReader(tt.wire), 4096), &v, 1<<20)
		require.Error(t, err, "%q", tt.wire)
		if tt.want != nil {
			assert.ErrorIs(t, err, tt.want, "%q", tt.wire)
		} else {
			var se *ServerError
			assert.True(t, errors.As(err, &se), "%q", tt.wire)
		}
	}
}

func FuzzReadTextValue(f *testing.F) {
	f.Add([]byte("VALUE a 5 3\r\nabc\r\nEND\r\n"))
	f.Add([]byte("VALUE k 0 4 12\r\n\r\n\r\n\r\nEND\r\n"))
	f.Add([]byte("VALUE a 0 4294967295\r\n"))
	f.Add([]byte("CLIENT_ERROR x\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(strings.NewReader(string(data)))
		var v TextValue
		for i := 0; i < 8; i++ {
			ok, err := ReadTextValue(br, &v, 1<<20)
			if err != nil || !ok {
				return
			}
			if len(v.Key) == 0 || len(v.Key) > len(data) || len(v.Value) > len(data) {
				t.Fatalf("impossible value: key %q, %d value bytes from %d input bytes", v.Key, len(v.Value), len(data))
			}
			if cap(v.Value) > 4*len(data)+2*readChunk {
				t.Fatalf("buffer of %d bytes for %d bytes of input", cap(v.Value), len(data))
			}
		}
	})
}

func FuzzParseReplyLine(f *testing.F) {
	for _, s := range []string{"STORED", "NOT_STORED", "123", "VERSION 1", "STAT a b", "CLIENT_ERROR x", "ERROR"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		_ = ParseStorageReply(line)
		_ = ParseDeleteReply(line)
		_, _ = ParseCounterReply(line)
		_, _ = ParseVersionReply(line)
		_, _, _ = ParseStatLine(line)
	})
}
