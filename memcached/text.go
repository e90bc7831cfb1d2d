package memcached

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
)

// Text protocol codec: append-style command encoders and reply parsers over
// a *bufio.Reader. Nothing here allocates on the success path except where a
// caller's buffer must grow.

// CheckKey returns an error wrapping ErrMalformedKey if key is empty or longer
// than MaxKeyLen bytes, or — for the text protocol, where keys are words —
// holds a space or a control character (DEL included).
func CheckKey(key string, text bool) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrMalformedKey, len(key), MaxKeyLen)
	}
	if text {
		for i := 0; i < len(key); i++ {
			if c := key[i]; c <= ' ' || c == 0x7f {
				return fmt.Errorf("%w: byte 0x%02x at %d", ErrMalformedKey, c, i)
			}
		}
	}
	return nil
}

var crlf = []byte("\r\n")

// Reply words of the text protocol.
var (
	replyStored    = []byte("STORED")
	replyNotStored = []byte("NOT_STORED")
	replyExists    = []byte("EXISTS")
	replyNotFound  = []byte("NOT_FOUND")
	replyDeleted   = []byte("DELETED")
	replyTouched   = []byte("TOUCHED")
	replyOK        = []byte("OK")
	replyEnd       = []byte("END")
	prefixValue    = []byte("VALUE ")
	prefixStat     = []byte("STAT ")
	prefixVersion  = []byte("VERSION ")
)

// AppendStorageCommand appends a storage command: cmd is one of "set", "add",
// "replace", "append", "prepend", "cas" (cas is sent only for "cas").
//
//	<cmd> <key> <flags> <exptime> <bytes> [<cas>] [noreply]\r\n<data>\r\n
func AppendStorageCommand(dst []byte, cmd, key string, flags uint32, exptime int64, value []byte, cas uint64, noreply bool) []byte {
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(flags), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, exptime, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(value)), 10)
	if cmd == "cas" {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, cas, 10)
	}
	if noreply {
		dst = append(dst, " noreply"...)
	}
	dst = append(dst, crlf...)
	dst = append(dst, value...)
	return append(dst, crlf...)
}

// AppendRetrievalCommand appends "get"/"gets" (cmd) for one or more keys.
func AppendRetrievalCommand(dst []byte, cmd string, keys ...string) []byte {
	dst = append(dst, cmd...)
	for _, k := range keys {
		dst = append(dst, ' ')
		dst = append(dst, k...)
	}
	return append(dst, crlf...)
}

// AppendGATCommand appends "gat"/"gats" (cmd) with an expiration for one or
// more keys.
func AppendGATCommand(dst []byte, cmd string, exptime int64, keys ...string) []byte {
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, exptime, 10)
	for _, k := range keys {
		dst = append(dst, ' ')
		dst = append(dst, k...)
	}
	return append(dst, crlf...)
}

// AppendTouchCommand appends "touch <key> <exptime> [noreply]".
func AppendTouchCommand(dst []byte, key string, exptime int64, noreply bool) []byte {
	dst = append(dst, "touch "...)
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, exptime, 10)
	return appendNoreply(dst, noreply)
}

// AppendCounterCommand appends "incr"/"decr" (cmd) "<key> <delta> [noreply]".
func AppendCounterCommand(dst []byte, cmd, key string, delta uint64, noreply bool) []byte {
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, delta, 10)
	return appendNoreply(dst, noreply)
}

// AppendDeleteCommand appends "delete <key> [noreply]".
func AppendDeleteCommand(dst []byte, key string, noreply bool) []byte {
	dst = append(dst, "delete "...)
	dst = append(dst, key...)
	return appendNoreply(dst, noreply)
}

// AppendFlushAllCommand appends "flush_all [delay] [noreply]"; a negative
// delay is left out.
func AppendFlushAllCommand(dst []byte, delay int64, noreply bool) []byte {
	dst = append(dst, "flush_all"...)
	if delay >= 0 {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, delay, 10)
	}
	return appendNoreply(dst, noreply)
}

// AppendVerbosityCommand appends "verbosity <level> [noreply]".
func AppendVerbosityCommand(dst []byte, level int, noreply bool) []byte {
	dst = append(dst, "verbosity "...)
	dst = strconv.AppendInt(dst, int64(level), 10)
	return appendNoreply(dst, noreply)
}

// AppendWordsCommand appends words joined by spaces and CRLF: "version",
// "quit", "stats", "stats slabs", …
func AppendWordsCommand(dst []byte, words ...string) []byte {
	for i, w := range words {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, w...)
	}
	return append(dst, crlf...)
}

func appendNoreply(dst []byte, noreply bool) []byte {
	if noreply {
		dst = append(dst, " noreply"...)
	}
	return append(dst, crlf...)
}

// maxLineLen bounds a reply line; memcached's longest (a VALUE line with a
// 250-byte key, or a long STAT) is far shorter.
const maxLineLen = 8 << 10

// ReadLine reads one reply line and returns it without its "\r\n". The slice
// aliases br's buffer and is valid until the next read. A line longer than
// maxLineLen, or one not ended by CRLF, wraps ErrProtocol.
func ReadLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, br.Size())
		}
		if len(line) == 0 {
			return nil, err // io.EOF between replies is a clean close
		}
		return nil, unexpected(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: reply line not ended by CRLF", ErrProtocol)
	}
	if len(line) > maxLineLen {
		return nil, fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, maxLineLen)
	}
	return line[:len(line)-2], nil
}

// ParseErrorLine returns a *ServerError if line is ERROR, CLIENT_ERROR or
// SERVER_ERROR, else nil.
func ParseErrorLine(line []byte) error {
	switch {
	case bytes.Equal(line, []byte("ERROR")):
		return &ServerError{Kind: KindError}
	case bytes.HasPrefix(line, []byte("ERROR ")):
		return &ServerError{Kind: KindError, Msg: string(line[6:])}
	case bytes.HasPrefix(line, []byte("CLIENT_ERROR")):
		return &ServerError{Kind: KindClientError, Msg: string(bytes.TrimPrefix(line[12:], []byte(" ")))}
	case bytes.HasPrefix(line, []byte("SERVER_ERROR")):
		return &ServerError{Kind: KindServerError, Msg: string(bytes.TrimPrefix(line[12:], []byte(" ")))}
	}
	return nil
}

// ParseStorageReply maps a storage reply line onto nil (STORED),
// ErrNotStored, ErrCASConflict (EXISTS), ErrCacheMiss (NOT_FOUND, cas on a
// missing key), a *ServerError, or an ErrProtocol.
func ParseStorageReply(line []byte) error {
	switch {
	case bytes.Equal(line, replyStored):
		return nil
	case bytes.Equal(line, replyNotStored):
		return ErrNotStored
	case bytes.Equal(line, replyExists):
		return ErrCASConflict
	case bytes.Equal(line, replyNotFound):
		return ErrCacheMiss
	}
	return unexpectedLine(line)
}

// ParseDeleteReply maps DELETED → nil, NOT_FOUND → ErrCacheMiss.
func ParseDeleteReply(line []byte) error { return parseWord(line, replyDeleted) }

// ParseTouchReply maps TOUCHED → nil, NOT_FOUND → ErrCacheMiss.
func ParseTouchReply(line []byte) error { return parseWord(line, replyTouched) }

// ParseOKReply maps OK → nil (flush_all, verbosity).
func ParseOKReply(line []byte) error { return parseWord(line, replyOK) }

func parseWord(line, ok []byte) error {
	switch {
	case bytes.Equal(line, ok):
		return nil
	case bytes.Equal(line, replyNotFound):
		return ErrCacheMiss
	}
	return unexpectedLine(line)
}

// ParseCounterReply parses an incr/decr reply: the new value, ErrCacheMiss
// (NOT_FOUND), or a *ServerError (CLIENT_ERROR on a non-numeric value).
func ParseCounterReply(line []byte) (uint64, error) {
	if bytes.Equal(line, replyNotFound) {
		return 0, ErrCacheMiss
	}
	if n, ok := parseUint(line); ok {
		return n, nil
	}
	return 0, unexpectedLine(line)
}

// ParseVersionReply returns the version from "VERSION x.y.z".
func ParseVersionReply(line []byte) (string, error) {
	if bytes.HasPrefix(line, prefixVersion) {
		return string(line[len(prefixVersion):]), nil
	}
	return "", unexpectedLine(line)
}

// ParseStatLine splits "STAT name value"; ok is false for any other line
// (END included).
func ParseStatLine(line []byte) (name, value []byte, ok bool) {
	if !bytes.HasPrefix(line, prefixStat) {
		return nil, nil, false
	}
	rest := line[len(prefixStat):]
	i := bytes.IndexByte(rest, ' ')
	if i < 0 {
		return rest, nil, true
	}
	return rest[:i], rest[i+1:], true
}

// IsEnd reports whether line is "END".
func IsEnd(line []byte) bool { return bytes.Equal(line, replyEnd) }

func unexpectedLine(line []byte) error {
	if err := ParseErrorLine(line); err != nil {
		return err
	}
	return fmt.Errorf("%w: unexpected reply %q", ErrProtocol, truncate(line))
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// TextValue is one item of a get/gets/gat/gats reply. Key and Value reuse the
// TextValue's buffers from one ReadTextValue to the next.
type TextValue struct {
	Key    []byte
	Flags  uint32
	CAS    uint64
	HasCAS bool
	Value  []byte
}

// ReadTextValue reads the next item of a retrieval reply into v. It returns
// false at END. maxValue bounds the announced length (≤0 means
// DefaultMaxBodyLen); memory follows the bytes actually received. An error
// reply comes back as a *ServerError.
func ReadTextValue(br *bufio.Reader, v *TextValue, maxValue int) (bool, error) {
	line, err := ReadLine(br)
	if err != nil {
		return false, err
	}
	if IsEnd(line) {
		return false, nil
	}
	if !bytes.HasPrefix(line, prefixValue) {
		return false, unexpectedLine(line)
	}
	n, err := v.parseHeader(line[len(prefixValue):], maxValue)
	if err != nil {
		return false, err
	}
	v.Value, err = readBody(br, v.Value[:0], n+2)
	if err != nil {
		return false, err
	}
	if !bytes.HasSuffix(v.Value, crlf) {
		return false, fmt.Errorf("%w: data block not ended by CRLF", ErrProtocol)
	}
	v.Value = v.Value[:n]
	return true, nil
}

// parseHeader parses "<key> <flags> <bytes> [<cas>]" into v and returns bytes.
func (v *TextValue) parseHeader(rest []byte, maxValue int) (int, error) {
	if maxValue <= 0 {
		maxValue = DefaultMaxBodyLen
	}
	var f [4][]byte
	nf := 0
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, ' ')
		w := rest
		if i >= 0 {
			w, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if nf == len(f) {
			return 0, fmt.Errorf("%w: VALUE line with too many fields", ErrProtocol)
		}
		f[nf] = w
		nf++
	}
	if nf < 3 || len(f[0]) == 0 {
		return 0, fmt.Errorf("%w: VALUE line with %d fields", ErrProtocol, nf)
	}
	flags, ok1 := parseUint(f[1])
	n, ok2 := parseUint(f[2])
	if !ok1 || !ok2 || flags > 1<<32-1 {
		return 0, fmt.Errorf("%w: bad VALUE line", ErrProtocol)
	}
	if n > uint64(maxValue) {
		return 0, fmt.Errorf("%w: value of %d bytes exceeds %d: %w", ErrProtocol, n, maxValue, ErrValueTooLarge)
	}
	v.Key = append(v.Key[:0], f[0]...)
	v.Flags = uint32(flags)
	v.CAS, v.HasCAS = 0, nf == 4
	if v.HasCAS {
		cas, ok := parseUint(f[3])
		if !ok {
			return 0, fmt.Errorf("%w: bad cas in VALUE line", ErrProtocol)
		}
		v.CAS = cas
	}
	return int(n), nil
}

// parseUint parses a non-empty decimal uint64 without allocating.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
