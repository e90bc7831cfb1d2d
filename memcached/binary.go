package memcached

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Binary protocol codec: pure functions over bytes. Requests are appended to a
// caller's buffer; responses are read into a caller's *Response whose buffer
// is reused from one read to the next.

// DefaultMaxBodyLen bounds the body a response may announce. memcached's
// largest item (-I) is 1 GiB, but nothing luaserve stores comes near this;
// a larger announced length is treated as a broken stream.
const DefaultMaxBodyLen = 64 << 20

// Header is the fixed 24-byte header of a binary packet. In a request Status
// holds the vbucket id, as the protocol lays it out.
type Header struct {
	Magic     byte
	Opcode    Opcode
	KeyLen    uint16
	ExtrasLen uint8
	DataType  uint8
	Status    Status
	BodyLen   uint32
	Opaque    uint32
	CAS       uint64
}

// AppendHeader appends h's 24 wire bytes to dst.
func AppendHeader(dst []byte, h *Header) []byte {
	dst = append(dst, h.Magic, byte(h.Opcode))
	dst = binary.BigEndian.AppendUint16(dst, h.KeyLen)
	dst = append(dst, h.ExtrasLen, h.DataType)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Status))
	dst = binary.BigEndian.AppendUint32(dst, h.BodyLen)
	dst = binary.BigEndian.AppendUint32(dst, h.Opaque)
	return binary.BigEndian.AppendUint64(dst, h.CAS)
}

// ParseHeader decodes a header from the first HeaderLen bytes of b, which
// must be that long. It checks nothing; see Response.check.
func ParseHeader(b []byte) Header {
	_ = b[HeaderLen-1]
	return Header{
		Magic:     b[0],
		Opcode:    Opcode(b[1]),
		KeyLen:    binary.BigEndian.Uint16(b[2:]),
		ExtrasLen: b[4],
		DataType:  b[5],
		Status:    Status(binary.BigEndian.Uint16(b[6:])),
		BodyLen:   binary.BigEndian.Uint32(b[8:]),
		Opaque:    binary.BigEndian.Uint32(b[12:]),
		CAS:       binary.BigEndian.Uint64(b[16:]),
	}
}

// Request is one binary request. Its slices are read, never kept.
type Request struct {
	Opcode  Opcode
	Key     string
	Extras  []byte
	Value   []byte
	Opaque  uint32
	CAS     uint64
	VBucket uint16
}

// AppendRequest appends req's packet to dst and returns the extended slice.
// It does not validate the key; see CheckKey.
func AppendRequest(dst []byte, req *Request) []byte {
	h := Header{
		Magic:     MagicRequest,
		Opcode:    req.Opcode,
		KeyLen:    uint16(len(req.Key)),
		ExtrasLen: uint8(len(req.Extras)),
		Status:    Status(req.VBucket),
		BodyLen:   uint32(len(req.Extras) + len(req.Key) + len(req.Value)),
		Opaque:    req.Opaque,
		CAS:       req.CAS,
	}
	dst = AppendHeader(dst, &h)
	dst = append(dst, req.Extras...)
	dst = append(dst, req.Key...)
	return append(dst, req.Value...)
}

// AppendStoreExtras appends the 8 extras bytes of Set/Add/Replace (and their
// quiet forms): flags then expiration.
func AppendStoreExtras(dst []byte, flags, exptime uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, flags)
	return binary.BigEndian.AppendUint32(dst, exptime)
}

// NoCreate is the Increment/Decrement expiration that makes a missing key a
// KeyNotFound instead of creating it with the initial value.
const NoCreate uint32 = 0xffffffff

// AppendCounterExtras appends the 20 extras bytes of Increment/Decrement:
// delta, initial value, expiration (NoCreate to not create).
func AppendCounterExtras(dst []byte, delta, initial uint64, exptime uint32) []byte {
	dst = binary.BigEndian.AppendUint64(dst, delta)
	dst = binary.BigEndian.AppendUint64(dst, initial)
	return binary.BigEndian.AppendUint32(dst, exptime)
}

// AppendExpiryExtras appends the 4 extras bytes of Touch/GAT/GATQ/GATK/GATKQ
// and Flush (delay) — a single 32-bit expiration.
func AppendExpiryExtras(dst []byte, exptime uint32) []byte {
	return binary.BigEndian.AppendUint32(dst, exptime)
}

// AppendVerbosityExtras appends the 4 extras bytes of Verbosity.
func AppendVerbosityExtras(dst []byte, level uint32) []byte {
	return binary.BigEndian.AppendUint32(dst, level)
}

// Response is one binary response. Extras, Key and Value alias an internal
// buffer that the next ReadResponse into the same Response overwrites: copy
// what must outlive it.
type Response struct {
	Header
	Extras []byte
	Key    []byte
	Value  []byte
	buf    []byte
}

// Flags returns the item flags from a Get-family response's extras (0 when
// absent).
func (r *Response) Flags() uint32 {
	if len(r.Extras) >= 4 {
		return binary.BigEndian.Uint32(r.Extras)
	}
	return 0
}

// Counter returns the new value carried by an Increment/Decrement response.
func (r *Response) Counter() (uint64, error) {
	if len(r.Value) != 8 {
		return 0, fmt.Errorf("%w: counter body of %d bytes", ErrProtocol, len(r.Value))
	}
	return binary.BigEndian.Uint64(r.Value), nil
}

// Err returns nil for StatusNoError and a *StatusError carrying the status and
// the server's body text otherwise.
func (r *Response) Err() error {
	if r.Status == StatusNoError {
		return nil
	}
	return &StatusError{Op: r.Opcode, Status: r.Status, Body: string(r.Value)}
}

// ReadResponse reads the next binary response from br into resp, reusing
// resp's buffer. maxBody bounds the announced body length (≤0 means
// DefaultMaxBodyLen); memory grows with the bytes actually received, so a
// hostile length costs nothing until the bytes arrive. A malformed header
// returns an error wrapping ErrProtocol and leaves the stream unusable.
func ReadResponse(br *bufio.Reader, resp *Response, maxBody int) error {
	hb, err := br.Peek(HeaderLen)
	if err != nil {
		if len(hb) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	resp.Header = ParseHeader(hb)
	if _, err := br.Discard(HeaderLen); err != nil {
		return err
	}
	if err := resp.check(maxBody); err != nil {
		return err
	}
	n := int(resp.BodyLen)
	resp.buf, err = readBody(br, resp.buf[:0], n)
	if err != nil {
		return err
	}
	e, k := int(resp.ExtrasLen), int(resp.KeyLen)
	resp.Extras = resp.buf[:e:e]
	resp.Key = resp.buf[e : e+k : e+k]
	resp.Value = resp.buf[e+k : n : n]
	return nil
}

func (r *Response) check(maxBody int) error {
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyLen
	}
	if r.Magic != MagicResponse {
		return fmt.Errorf("%w: bad magic 0x%02x", ErrProtocol, r.Magic)
	}
	if uint64(r.KeyLen)+uint64(r.ExtrasLen) > uint64(r.BodyLen) {
		return fmt.Errorf("%w: key %d + extras %d exceed body %d", ErrProtocol, r.KeyLen, r.ExtrasLen, r.BodyLen)
	}
	if uint64(r.BodyLen) > uint64(maxBody) {
		return fmt.Errorf("%w: body of %d bytes exceeds %d: %w", ErrProtocol, r.BodyLen, maxBody, ErrValueTooLarge)
	}
	return nil
}

// readChunk is the step in which a body announced larger than this is read,
// so memory follows the data that really arrived.
const readChunk = 64 << 10

// readBody appends exactly n bytes from br to dst.
func readBody(br *bufio.Reader, dst []byte, n int) ([]byte, error) {
	if n <= readChunk || cap(dst)-len(dst) >= n {
		if cap(dst)-len(dst) < n {
			dst = append(dst[:cap(dst)], make([]byte, n-(cap(dst)-len(dst)))...)[:len(dst)]
		}
		start := len(dst)
		dst = dst[:start+n]
		if _, err := io.ReadFull(br, dst[start:]); err != nil {
			return dst[:start], unexpected(err)
		}
		return dst, nil
	}
	for n > 0 {
		step := min(n, readChunk)
		start := len(dst)
		dst = append(dst, make([]byte, step)...)
		if _, err := io.ReadFull(br, dst[start:]); err != nil {
			return dst[:start], unexpected(err)
		}
		n -= step
	}
	return dst, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
