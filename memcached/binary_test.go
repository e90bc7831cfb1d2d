package memcached

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	require.NoError(t, err)
	return b
}

// The golden packets are the examples of memcached's binary protocol
// specification (protocol_binary.txt / the BinaryProtocolRevamped wiki).
func TestAppendRequestGolden(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"get Hello", Request{Opcode: OpGet, Key: "Hello"},
			"80 00 0005 00 00 0000 00000005 00000000 0000000000000000 48656c6c6f"},
		{"set Hello World flags deadbeef exp 3600",
			Request{Opcode: OpSet, Key: "Hello", Value: []byte("World"), Extras: AppendStoreExtras(nil, 0xdeadbeef, 0x1c20)},
			"80 01 0005 08 00 0000 00000012 00000000 0000000000000000 deadbeef 00001c20 48656c6c6f 576f726c64"},
		{"add with opaque and cas", Request{Opcode: OpAddQ, Key: "k", Value: []byte("v"), Extras: AppendStoreExtras(nil, 1, 2), Opaque: 0xa1b2c3d4, CAS: 0x0102030405060708},
			"80 12 0001 08 00 0000 0000000a a1b2c3d4 0102030405060708 00000001 00000002 6b 76"},
		{"incr counter by 1 from 0 exp 3600",
			Request{Opcode: OpIncrement, Key: "counter", Extras: AppendCounterExtras(nil, 1, 0, 0xe10)},
			"80 05 0007 14 00 0000 0000001b 00000000 0000000000000000 0000000000000001 0000000000000000 00000e10 636f756e746572"},
		{"touch", Request{Opcode: OpTouch, Key: "k", Extras: AppendExpiryExtras(nil, 10)},
			"80 1c 0001 04 00 0000 00000005 00000000 0000000000000000 0000000a 6b"},
		{"flush with delay", Request{Opcode: OpFlush, Extras: AppendExpiryExtras(nil, 5)},
			"80 08 0000 04 00 0000 00000004 00000000 0000000000000000 00000005"},
		{"verbosity", Request{Opcode: OpVerbosity, Extras: AppendVerbosityExtras(nil, 1)},
			"80 1b 0000 04 00 0000 00000004 00000000 0000000000000000 00000001"},
		{"noop", Request{Opcode: OpNoop, Opaque: 7},
			"80 0a 0000 00 00 0000 00000000 00000007 0000000000000000"},
		{"vbucket", Request{Opcode: OpGetK, Key: "a", VBucket: 0x0102},
			"80 0c 0001 00 00 0102 00000001 00000000 0000000000000000 61"},
		{"sasl plain", Request{Opcode: OpSASLAuth, Key: "PLAIN", Value: []byte("\x00u\x00p")},
			"80 21 0005 00 00 0000 00000009 00000000 0000000000000000 504c41494e 00750070"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendRequest([]byte("prefix"), &tt.req)
			assert.Equal(t, hex.EncodeToString(unhex(t, tt.want)), hex.EncodeToString(got[6:]))
			assert.Equal(t, "prefix", string(got[:6]), "appends, never overwrites")
		})
	}
}

func TestReadResponseGolden(t *testing.T) {
	tests := []struct {
		name    string
		wire    string
		want    Header
		extras  string
		key     string
		value   string
		wantErr error
	}{
		{"get hit World flags deadbeef cas 1",
			"81 00 0000 04 00 0000 00000009 00000000 0000000000000001 deadbeef 576f726c64",
			Header{Magic: MagicResponse, Opcode: OpGet, ExtrasLen: 4, BodyLen: 9, CAS: 1}, "\xde\xad\xbe\xef", "", "World", nil},
		{"get miss carries the server's text",
			"81 00 0000 00 00 0001 00000009 00000000 0000000000000000 4e6f7420666f756e64",
			Header{Magic: MagicResponse, Opcode: OpGet, Status: StatusKeyNotFound, BodyLen: 9}, "", "", "Not found", nil},
		{"getk hit with key",
			"81 0c 0005 04 00 0000 0000000e 0000002a 0000000000000009 00000000 48656c6c6f 576f726c64",
			Header{Magic: MagicResponse, Opcode: OpGetK, KeyLen: 5, ExtrasLen: 4, BodyLen: 14, Opaque: 42, CAS: 9}, "\x00\x00\x00\x00", "Hello", "World", nil},
		{"incr result", "81 05 0000 00 00 0000 00000008 00000000 0000000000000005 0000000000000010",
			Header{Magic: MagicResponse, Opcode: OpIncrement, BodyLen: 8, CAS: 5}, "", "", "\x00\x00\x00\x00\x00\x00\x00\x10", nil},
		{"stat terminator", "81 10 0000 00 00 0000 00000000 00000003 0000000000000000",
			Header{Magic: MagicResponse, Opcode: OpStat, Opaque: 3}, "", "", "", nil},
		{"bad magic", "80 00 0000 00 00 0000 00000000 00000000 0000000000000000", Header{}, "", "", "", ErrProtocol},
		{"key+extras beyond body", "81 00 0005 04 00 0000 00000004 00000000 0000000000000000 00000000",
			Header{}, "", "", "", ErrProtocol},
		{"hostile body length", "81 00 0000 00 00 0000 ffffffff 00000000 0000000000000000",
			Header{}, "", "", "", ErrValueTooLarge},
		{"truncated header", "81 00 00", Header{}, "", "", "", io.ErrUnexpectedEOF},
		{"truncated body", "81 00 0000 00 00 0000 00000009 00000000 0000000000000000 4e6f", Header{}, "", "", "", io.ErrUnexpectedEOF},
		{"empty stream", "", Header{}, "", "", "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp Response
			err := ReadResponse(bufio.NewReader(bytes.NewReader(unhex(t, tt.wire))), &resp, 0)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, resp.Header)
			assert.Equal(t, tt.extras, string(resp.Extras))
			assert.Equal(t, tt.key, string(resp.Key))
			assert.Equal(t, tt.value, string(resp.Value))
		})
	}
}

func TestResponseHelpers(t *testing.T) {
	r := Response{Header: Header{Opcode: OpGet, Status: StatusKeyNotFound}, Value: []byte("Not found")}
	err := r.Err()
	var se *StatusError
	require.True(t, errors.As(err, &se))
	assert.Equal(t, "Not found", se.Body)
	assert.ErrorIs(t, err, ErrCacheMiss)
	assert.Contains(t, err.Error(), "Key not found")

	r = Response{Extras: []byte{0, 0, 1, 0}, Value: []byte{0, 0, 0, 0, 0, 0, 0, 3}}
	assert.EqualValues(t, 256, r.Flags())
	n, err := r.Counter()
	require.NoError(t, err)
	assert.EqualValues(t, 3, n)
	r.Value = []byte("x")
	_, err = r.Counter()
	assert.ErrorIs(t, err, ErrProtocol)
}

func TestStatusErrorMapping(t *testing.T) {
	tests := []struct {
		op     Opcode
		status Status
		want   error
	}{
		{OpGet, StatusKeyNotFound, ErrCacheMiss},
		{OpDelete, StatusKeyNotFound, ErrCacheMiss},
		{OpReplace, StatusKeyNotFound, ErrNotStored},
		{OpAppendQ, StatusKeyNotFound, ErrNotStored},
		{OpAdd, StatusKeyExists, ErrNotStored},
		{OpSet, StatusKeyExists, ErrCASConflict},
		{OpAppend, StatusItemNotStored, ErrNotStored},
		{OpSet, StatusValueTooLarge, ErrValueTooLarge},
		{OpIncrement, StatusNonNumeric, ErrNonNumeric},
		{OpSASLAuth, StatusAuthError, ErrAuth},
	}
	for _, tt := range tests {
		err := error(&StatusError{Op: tt.op, Status: tt.status})
		assert.ErrorIs(t, err, tt.want, "%s %s", tt.op, tt.status)
		assert.True(t, Resumable(err))
	}
}

// TestReadResponseReusesBuffer: the second read into the same Response
// allocates nothing.
func TestReadResponseReusesBuffer(t *testing.T) {
	pkt := unhex(t, "81 00 0000 04 00 0000 00000009 00000000 0000000000000001 deadbeef 576f726c64")
	rd := bytes.NewReader(nil)
	br := bufio.NewReader(rd)
	var resp Response
	allocs := testing.AllocsPerRun(100, func() {
		rd.Reset(pkt)
		br.Reset(rd)
		if err := ReadResponse(br, &resp, 0); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

// TestReadResponseLargeBodyGrowsWithData: a body announced at the limit but
// cut short must not have allocated the announced size up front.
func TestReadResponseLargeBodyGrowsWithData(t *testing.T) {
	hdr := AppendHeader(nil, &Header{Magic: MagicResponse, BodyLen: 60 << 20})
	wire := append(hdr, make([]byte, 100<<10)...)
	var resp Response
	err := ReadResponse(bufio.NewReader(bytes.NewReader(wire)), &resp, 0)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Less(t, cap(resp.buf), 1<<20)

	big := bytes.Repeat([]byte("v"), 300<<10)
	wire = append(AppendHeader(nil, &Header{Magic: MagicResponse, BodyLen: uint32(len(big))}), big...)
	require.NoError(t, ReadResponse(bufio.NewReader(bytes.NewReader(wire)), &resp, 0))
	assert.Equal(t, big, resp.Value)
}

func TestOpcodeStatusTexts(t *testing.T) {
	assert.Equal(t, "GATKQ", OpGATKQ.String())
	assert.Equal(t, "Key exists", StatusKeyExists.String())
	assert.Len(t, Opcodes(), 36)
}

func FuzzReadResponse(f *testing.F) {
	f.Add(unhex(f, "81 00 0000 04 00 0000 00000009 00000000 0000000000000001 deadbeef 576f726c64"))
	f.Add(unhex(f, "81 0c 0005 04 00 0000 0000000e 0000002a 0000000000000009 00000000 48656c6c6f 576f726c64"))
	f.Add(unhex(f, "81 00 0000 00 00 0000 ffffffff 00000000 0000000000000000"))
	f.Add(unhex(f, "81 10 0003 00 00 0000 00000005 00000000 0000000000000000 706964 3132"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		var resp Response
		for i := 0; i < 8; i++ {
			err := ReadResponse(br, &resp, 1<<20)
			if err != nil {
				return
			}
			if int(resp.BodyLen) != len(resp.Extras)+len(resp.Key)+len(resp.Value) ||
				len(resp.Extras) != int(resp.ExtrasLen) || len(resp.Key) != int(resp.KeyLen) {
				t.Fatalf("inconsistent response %+v", resp.Header)
			}
			if cap(resp.buf) > 4*len(data)+2*readChunk {
				t.Fatalf("buffer of %d bytes for %d bytes of input", cap(resp.buf), len(data))
			}
		}
	})
}
