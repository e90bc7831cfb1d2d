package memcached

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
)

// The text protocol on a Mux. Binary replies carry their length and an
// opaque; text replies carry neither, so a shared text connection stays in
// step only while every command on it draws exactly one reply and the
// server consumes exactly the bytes sent. memcached breaks both on a
// command it finds malformed: a storage command whose line it refuses
// (CLIENT_ERROR, no swallow) has its data block read as the next command,
// and a trailing "noreply" token silences the reply. Such a reply would be
// taken for the next caller's — another request's. So DoText accepts only
// commands it can prove well-formed (CheckTextCommand), and whoever builds
// commands from user input sends the others on a connection of its own,
// where the server's reading of them concerns nobody else.

// ErrUnshareable means a text command is not one Mux.DoText carries: not
// a single-reply data command, or not provably well-formed (a key the text
// protocol cannot carry, a number memcached would refuse, a length that is
// not the data's). Nothing was sent.
var ErrUnshareable = errors.New("memcached: command cannot share a connection")

// TextReply is the reply to one command sent with Mux.DoText, in buffers
// of its own that are reused from one call to the next.
type TextReply struct {
	// Line is the reply's last line without CRLF, verbatim: STORED,
	// NOT_FOUND, a counter's value, CLIENT_ERROR …; for get and gets, END
	// (also after an item) or whatever line came instead of an item.
	Line []byte
	// Hit says get or gets found its key: Value, Flags and, for gets, CAS
	// hold the item.
	Hit   bool
	Value []byte
	Flags uint32
	CAS   uint64
}

func (r *TextReply) reset() {
	r.Line, r.Value = r.Line[:0], r.Value[:0]
	r.Hit, r.Flags, r.CAS = false, 0, 0
}

// CheckTextCommand reports whether cmd is exactly one command that
// Mux.DoText can carry on a shared connection, and how its reply is read.
// Accepted, written with single spaces and nothing after the final CRLF:
//
//	set|add|replace|append|prepend <key> <flags> <exptime> <bytes>\r\n<data>\r\n
//	cas <key> <flags> <exptime> <bytes> <cas unique>\r\n<data>\r\n
//	get|gets|delete <key>\r\n
//	incr|decr <key> <delta>\r\n
//	touch <key> <exptime>\r\n
//
// where key passes CheckKey for the text protocol and is not "noreply",
// flags fits 32 bits, exptime 32 signed bits, delta and the unique 64 bits
// (decimal, no sign but exptime's minus), and bytes is the data's length.
// Anything else wraps ErrUnshareable.
func CheckTextCommand(cmd []byte) error {
	_, err := textCommandKind(cmd)
	return err
}

func textCommandKind(cmd []byte) (textKind, error) {
	nl := bytes.IndexByte(cmd, '\n')
	if nl < 1 || cmd[nl-1] != '\r' {
		return 0, unshareable("no CRLF-ended command line")
	}
	line, rest := cmd[:nl-1], cmd[nl+1:]
	var w [7][]byte
	n := 0
	for len(line) > 0 {
		if n == len(w) {
			return 0, unshareable("too many words")
		}
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			w[n], line = line, nil
		} else {
			w[n], line = line[:i], line[i+1:]
			if len(line) == 0 {
				return 0, unshareable("trailing space")
			}
		}
		n++
	}
	if n < 2 {
		return 0, unshareable("no key")
	}
	if !textKey(w[1]) {
		return 0, unshareable("key not a text-protocol word")
	}
	kind := kindStore
	words := 0
	switch string(w[0]) {
	case "set", "add", "replace", "append", "prepend":
		words = 5
	case "cas":
		words = 6
	case "get", "gets":
		kind, words = kindGet, 2
	case "delete":
		kind, words = kindDelete, 2
	case "incr", "decr":
		kind, words = kindCounter, 3
	case "touch":
		kind, words = kindTouch, 3
	default:
		return 0, unshareable("not a single-reply data command")
	}
	if n != words {
		return 0, unshareable("wrong number of words")
	}
	switch kind {
	case kindCounter:
		if _, ok := parseUint(w[2]); !ok {
			return 0, unshareable("delta not a 64-bit decimal")
		}
	case kindTouch:
		if !isInt32(w[2]) {
			return 0, unshareable("exptime not a 32-bit decimal")
		}
	case kindStore:
		flags, ok := parseUint(w[2])
		if !ok || flags > math.MaxUint32 || !isInt32(w[3]) {
			return 0, unshareable("flags or exptime out of range")
		}
		size, ok := parseUint(w[4])
		// memcached refuses a length above INT_MAX-2 without swallowing.
		if !ok || size > math.MaxInt32-2 || uint64(len(rest)) != size+2 || !bytes.HasSuffix(rest, crlf) {
			return 0, unshareable("bytes not the data block's length")
		}
		if words == 6 {
			if _, ok := parseUint(w[5]); !ok {
				return 0, unshareable("cas unique not a 64-bit decimal")
			}
		}
		return kind, nil
	}
	if len(rest) != 0 {
		return 0, unshareable("more than one command")
	}
	return kind, nil
}

// textKey is CheckKey for the text protocol, on bytes and without an
// error to build. "noreply" is refused too: as the last word of a command
// memcached takes it for the flag that silences the reply.
func textKey(k []byte) bool {
	if len(k) == 0 || len(k) > MaxKeyLen || string(k) == "noreply" {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func unshareable(why string) error { return fmt.Errorf("%w: %s", ErrUnshareable, why) }

// isInt32 reports whether b is a decimal memcached reads as a 32-bit
// signed exptime: an optional minus, then digits within range.
func isInt32(b []byte) bool {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	n, ok := parseUint(b)
	if !ok {
		return false
	}
	if neg {
		return n <= -math.MinInt32
	}
	return n <= math.MaxInt32
}

// readTextReply reads the reply to one command of kind into r. An error
// means the stream is lost before the reply was complete. after, when set,
// means the reply was read in full but the stream cannot be trusted past
// it — a bare ERROR, a line such a command is never answered with, a
// second item after a single key's: the caller keeps its reply, as
// lua-resty-memcached's own reading would, and the connection is not
// used again.
func readTextReply(br *bufio.Reader, kind textKind, r *TextReply, tv *TextValue, maxBody int) (after, err error) {
	line, err := ReadLine(br)
	if err != nil {
		return nil, err
	}
	if kind == kindGet && bytes.HasPrefix(line, prefixValue) {
		n, err := tv.parseHeader(line[len(prefixValue):], maxBody)
		if err != nil {
			return nil, err
		}
		r.Value, err = readBody(br, r.Value[:0], n+2)
		if err != nil {
			return nil, err
		}
		if !bytes.HasSuffix(r.Value, crlf) {
			return nil, fmt.Errorf("%w: data block not ended by CRLF", ErrProtocol)
		}
		r.Value = r.Value[:n]
		r.Hit, r.Flags, r.CAS = true, tv.Flags, tv.CAS
		if line, err = ReadLine(br); err != nil {
			return nil, err
		}
	}
	r.Line = append(r.Line[:0], line...)
	if inStep(kind, r.Hit, line) {
		return nil, nil
	}
	return fmt.Errorf("%w: unexpected reply %q", ErrProtocol, truncate(line)), nil
}

// inStep reports whether line is one that ends a reply to a command of
// kind, so that the next line is the next command's.
func inStep(kind textKind, hit bool, line []byte) bool {
	if hit {
		return IsEnd(line)
	}
	switch kind {
	case kindGet:
		if IsEnd(line) {
			return true
		}
	case kindStore:
		if bytes.Equal(line, replyStored) || bytes.Equal(line, replyNotStored) ||
			bytes.Equal(line, replyExists) || bytes.Equal(line, replyNotFound) {
			return true
		}
	case kindDelete:
		if bytes.Equal(line, replyDeleted) || bytes.Equal(line, replyNotFound) {
			return true
		}
	case kindTouch:
		// moxi answers a touch with STORED.
		if bytes.Equal(line, replyTouched) || bytes.Equal(line, replyNotFound) || bytes.Equal(line, replyStored) {
			return true
		}
	case kindCounter:
		if _, ok := parseUint(line); ok || bytes.Equal(line, replyNotFound) {
			return true
		}
	}
	// Refusals of a well-formed command are whole replies; a bare ERROR
	// (command not understood) may be followed by more.
	return bytes.HasPrefix(line, []byte("CLIENT_ERROR")) || bytes.HasPrefix(line, []byte("SERVER_ERROR"))
}
