package memcached

import (
	"errors"
	"net"
	"os"
	"strings"
)

// Sentinel errors. Every error the package returns for one of these outcomes
// satisfies errors.Is against it, whether it came from the binary protocol
// (a *StatusError), the text protocol (a reply line) or a client-side check.
var (
	// ErrCacheMiss means the key was not found (get, delete, incr/decr,
	// touch, cas on a missing key).
	ErrCacheMiss = errors.New("memcached: cache miss")

	// ErrNotStored means a conditional store was refused: add on an existing
	// key, replace/append/prepend on a missing one.
	ErrNotStored = errors.New("memcached: item not stored")

	// ErrCASConflict means a compare-and-swap lost: the item changed since it
	// was read.
	ErrCASConflict = errors.New("memcached: compare-and-swap conflict")

	// ErrMalformedKey means a key is empty, longer than MaxKeyLen bytes, or
	// (text protocol) holds a space or a control character. Nothing was sent.
	ErrMalformedKey = errors.New("memcached: malformed key")

	// ErrValueTooLarge means the server refused a value as too large, or a
	// response announced a body larger than the configured limit.
	ErrValueTooLarge = errors.New("memcached: value too large")

	// ErrNonNumeric means incr/decr hit a value that is not a decimal number.
	ErrNonNumeric = errors.New("memcached: incr/decr on non-numeric value")

	// ErrServerDown means the server for a key is marked down after failing to
	// connect, and no other server could take the key.
	ErrServerDown = errors.New("memcached: server down")

	// ErrNoServers means a client or selector has no servers configured.
	ErrNoServers = errors.New("memcached: no servers configured")

	// ErrProtocol means a reply could not be parsed; the connection that read
	// it is out of step with the server and is closed.
	ErrProtocol = errors.New("memcached: protocol error")

	// ErrTimeout means a connect, send or read deadline passed. Also
	// satisfies os.ErrDeadlineExceeded where the deadline was the socket's.
	ErrTimeout = errors.New("memcached: timeout")

	// ErrClosed means the connection, pool or client was closed.
	ErrClosed = errors.New("memcached: closed")

	// ErrAuth means SASL authentication failed.
	ErrAuth = errors.New("memcached: authentication failed")
)

// ServerErrorKind tells which of the text protocol's error replies a
// *ServerError came from.
type ServerErrorKind uint8

// Text protocol error replies.
const (
	KindError       ServerErrorKind = iota // "ERROR": unknown command
	KindClientError                        // "CLIENT_ERROR msg"
	KindServerError                        // "SERVER_ERROR msg"
)

func (k ServerErrorKind) String() string {
	switch k {
	case KindClientError:
		return "CLIENT_ERROR"
	case KindServerError:
		return "SERVER_ERROR"
	}
	return "ERROR"
}

// ServerError is a text protocol error reply; Msg is the server's text after
// the keyword, verbatim.
type ServerError struct {
	Kind ServerErrorKind
	Msg  string
}

func (e *ServerError) Error() string {
	if e.Msg == "" {
		return "memcached: " + e.Kind.String()
	}
	return "memcached: " + e.Kind.String() + " " + e.Msg
}

// Line returns the reply line as the server sent it (without CRLF), which is
// what lua-resty-memcached hands back as its error string.
func (e *ServerError) Line() string {
	if e.Msg == "" {
		return e.Kind.String()
	}
	return e.Kind.String() + " " + e.Msg
}

// Is maps the server's well-known texts onto the sentinels.
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrValueTooLarge:
		return strings.Contains(e.Msg, "too large")
	case ErrNonNumeric:
		return strings.Contains(e.Msg, "non-numeric")
	}
	return false
}

// StatusError is a binary response whose status is not StatusNoError. Body is
// the text the server sent with it ("Not found", "Data exists for key.", …).
type StatusError struct {
	Op     Opcode
	Status Status
	Body   string
}

func (e *StatusError) Error() string {
	msg := "memcached: " + e.Op.String() + ": " + e.Status.String()
	if e.Body != "" && e.Body != e.Status.String() {
		msg += " (" + e.Body + ")"
	}
	return msg
}

// Is maps statuses onto the sentinels the way gomemcache's verbs report them:
// a missing key is ErrCacheMiss except where a store was refused (replace,
// append, prepend → ErrNotStored); an existing key is ErrNotStored for add and
// ErrCASConflict otherwise.
func (e *StatusError) Is(target error) bool {
	switch e.Status {
	case StatusKeyNotFound:
		switch e.Op {
		case OpReplace, OpReplaceQ, OpAppend, OpAppendQ, OpPrepend, OpPrependQ:
			return target == ErrNotStored
		}
		return target == ErrCacheMiss
	case StatusKeyExists:
		switch e.Op {
		case OpAdd, OpAddQ:
			return target == ErrNotStored
		}
		return target == ErrCASConflict
	case StatusItemNotStored:
		return target == ErrNotStored
	case StatusValueTooLarge:
		return target == ErrValueTooLarge
	case StatusNonNumeric:
		return target == ErrNonNumeric
	case StatusAuthError, StatusAuthErrorSpec:
		return target == ErrAuth
	}
	return false
}

// timeoutError wraps a socket deadline error so that it is both ErrTimeout
// and whatever the net package returned.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string   { return "memcached: timeout: " + e.err.Error() }
func (e *timeoutError) Unwrap() []error { return []error{ErrTimeout, e.err} }
func (e *timeoutError) Timeout() bool   { return true }

// wrapNetErr tags deadline errors as ErrTimeout and leaves others alone.
func wrapNetErr(err error) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &timeoutError{err}
	}
	return err
}

// Resumable reports whether a connection that returned err is still in step
// with its server and may be reused (pooled). It is the single rule for
// reuse: protocol outcomes (miss, not stored, exists, a binary status, a text
// error reply read in full, a key refused before sending) keep the
// connection; timeouts, I/O errors and unparsable replies close it.
func Resumable(err error) bool {
	if err == nil {
		return true
	}
	var se *StatusError
	if errors.As(err, &se) {
		return true
	}
	var sv *ServerError
	if errors.As(err, &sv) {
		// A bare ERROR answers a command the server did not understand: the
		// rest of what we sent may be read as commands, so stop trusting it.
		return sv.Kind != KindError
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrProtocol) || errors.Is(err, ErrClosed) {
		return false
	}
	return errors.Is(err, ErrCacheMiss) || errors.Is(err, ErrNotStored) ||
		errors.Is(err, ErrCASConflict) || errors.Is(err, ErrMalformedKey) ||
		errors.Is(err, ErrValueTooLarge)
}
