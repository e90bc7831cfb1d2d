package memcached

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"
)

// Protocol selects the wire protocol.
type Protocol uint8

// Protocols. The zero value is Binary.
const (
	Binary Protocol = iota
	Text
)

func (p Protocol) String() string {
	if p == Text {
		return "text"
	}
	return "binary"
}

// Defaults for zero-valued Options and Config fields.
const (
	DefaultConnectTimeout = time.Second
	DefaultSendTimeout    = time.Second
	DefaultReadTimeout    = time.Second
	// DefaultMaxIdle and DefaultPoolSize are what lua-resty's set_keepalive
	// uses when given 0 (lua_socket_keepalive_timeout, lua_socket_pool_size).
	DefaultMaxIdle  = 60 * time.Second
	DefaultPoolSize = 30
)

// Options configure how a connection is made. The zero value dials TCP with
// the default timeouts, no TLS and no authentication.
type Options struct {
	// Network is "tcp" or "unix"; empty means unix when the address starts
	// with "/" or "@" (abstract socket), else tcp.
	Network string
	// TLS, when set, wraps the connection (its ServerName defaults to the
	// address's host).
	TLS *tls.Config
	// ConnectTimeout bounds dialing, the TLS handshake and SASL; SendTimeout
	// each flush; ReadTimeout each response. Zero means the Default.
	ConnectTimeout, SendTimeout, ReadTimeout time.Duration
	// Username and Password, when Username is set, authenticate each new
	// connection with SASL PLAIN (binary protocol only).
	Username, Password string
	// Protocol says what the connection speaks; it decides only whether SASL
	// can run at connect time.
	Protocol Protocol
	// MaxValueSize bounds a response body (≤0: DefaultMaxBodyLen).
	MaxValueSize int
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (o *Options) connectTimeout() time.Duration {
	return orDefault(o.ConnectTimeout, DefaultConnectTimeout)
}
func (o *Options) sendTimeout() time.Duration { return orDefault(o.SendTimeout, DefaultSendTimeout) }
func (o *Options) readTimeout() time.Duration { return orDefault(o.ReadTimeout, DefaultReadTimeout) }

func (o *Options) network(addr string) string {
	if o.Network != "" {
		return o.Network
	}
	if strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "@") {
		return "unix"
	}
	return "tcp"
}

// dialNet makes the socket (and TLS session) for addr within the connect
// timeout and ctx.
func dialNet(ctx context.Context, addr string, o *Options) (nc, raw net.Conn, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.connectTimeout())
	defer cancel()
	var d net.Dialer
	nc, err = d.DialContext(ctx, o.network(addr), addr)
	if err != nil {
		return nil, nil, wrapNetErr(err)
	}
	raw = nc
	if o.TLS != nil {
		cfg := o.TLS
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, nil, wrapNetErr(err)
		}
		nc = tc
	}
	return nc, raw, nil
}

// Conn is one connection to one server, driven directly: requests are
// buffered by Send/Write and go out on Flush; responses are read in order by
// Receive (binary) or ReadLine/ReadValue (text). A Conn is owned by one
// goroutine at a time. Any timeout, I/O error or unparsable reply marks it
// broken (see Resumable), and a broken Conn is closed rather than pooled.
type Conn struct {
	nc      net.Conn
	raw     net.Conn // the socket under TLS, or nc
	br      *bufio.Reader
	bw      *bufio.Writer
	addr    string
	opts    Options
	send    time.Duration
	read    time.Duration
	reused  int
	opaque  uint32
	broken  bool
	closed  bool
	idleAt  time.Time
	scratch []byte
	pool    *Pool
}

// Dial connects to addr (host:port, or a unix socket path) and, when
// opts.Username is set and the protocol is binary, authenticates with SASL
// PLAIN. opts may be nil.
func Dial(ctx context.Context, addr string, opts *Options) (*Conn, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	nc, raw, err := dialNet(ctx, addr, &o)
	if err != nil {
		return nil, fmt.Errorf("memcached: dial %s: %w", addr, err)
	}
	c := &Conn{
		nc:   nc,
		raw:  raw,
		br:   bufio.NewReaderSize(nc, 16<<10),
		bw:   bufio.NewWriterSize(nc, 16<<10),
		addr: addr,
		opts: o,
		send: o.sendTimeout(),
		read: o.readTimeout(),
	}
	if o.Username != "" {
		if o.Protocol != Binary {
			nc.Close()
			return nil, fmt.Errorf("memcached: %s: SASL needs the binary protocol", addr)
		}
		nc.SetDeadline(time.Now().Add(o.connectTimeout())) //nolint:errcheck // a dead socket fails the auth below
		if err := c.AuthPlain(o.Username, o.Password); err != nil {
			nc.Close()
			return nil, err
		}
		nc.SetDeadline(time.Time{}) //nolint:errcheck
	}
	return c, nil
}

// AuthPlain runs SASL PLAIN on c; a refusal wraps ErrAuth.
func (c *Conn) AuthPlain(user, pass string) error {
	val := make([]byte, 0, 2+len(user)+len(pass))
	val = append(append(append(append(val, 0), user...), 0), pass...)
	var resp Response
	if err := c.RoundTrip(&Request{Opcode: OpSASLAuth, Key: "PLAIN", Value: val}, &resp); err != nil {
		return err
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("memcached: SASL PLAIN as %q on %s: %w", user, c.addr, err)
	}
	return nil
}

// Addr returns the address the Conn was dialed with.
func (c *Conn) Addr() string { return c.addr }

// ReusedTimes returns how many times the Conn was handed out again by its
// pool (0 for a fresh connection), as get_reused_times reports it.
func (c *Conn) ReusedTimes() int { return c.reused }

// Broken reports whether the Conn saw an error after which it cannot be
// trusted (and so will not be pooled).
func (c *Conn) Broken() bool { return c.broken || c.closed }

// SetTimeouts changes the send and read timeouts for later operations; zero
// leaves one unchanged.
func (c *Conn) SetTimeouts(send, read time.Duration) {
	if send > 0 {
		c.send = send
	}
	if read > 0 {
		c.read = read
	}
}

// NextOpaque returns a fresh opaque value for a request on this Conn.
func (c *Conn) NextOpaque() uint32 {
	c.opaque++
	return c.opaque
}

// fail records err's effect on the connection and returns it.
func (c *Conn) fail(err error) error {
	err = wrapNetErr(err)
	if !Resumable(err) {
		c.broken = true
	}
	return err
}

func (c *Conn) usable() error {
	if c.closed {
		return ErrClosed
	}
	if c.broken {
		return fmt.Errorf("%w: connection to %s is broken", ErrClosed, c.addr)
	}
	return nil
}

// Send buffers one binary request; nothing is written until Flush (or until
// the buffer fills).
func (c *Conn) Send(req *Request) error {
	if err := c.usable(); err != nil {
		return err
	}
	c.scratch = AppendRequest(c.scratch[:0], req)
	_, err := c.Write(c.scratch)
	return err
}

// Write buffers raw bytes (text commands built with the Append* encoders).
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.usable(); err != nil {
		return 0, err
	}
	if len(p) > c.bw.Available() {
		c.nc.SetWriteDeadline(time.Now().Add(c.send)) //nolint:errcheck
	}
	n, err := c.bw.Write(p)
	if err != nil {
		return n, c.fail(err)
	}
	return n, nil
}

// Flush writes everything buffered within the send timeout.
func (c *Conn) Flush() error {
	if err := c.usable(); err != nil {
		return err
	}
	if c.bw.Buffered() == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.send)) //nolint:errcheck
	if err := c.bw.Flush(); err != nil {
		return c.fail(err)
	}
	return nil
}

func (c *Conn) readDeadline() error {
	if err := c.usable(); err != nil {
		return err
	}
	if c.bw.Buffered() > 0 {
		if err := c.Flush(); err != nil {
			return err
		}
	}
	c.nc.SetReadDeadline(time.Now().Add(c.read)) //nolint:errcheck
	return nil
}

// Receive reads the next binary response into resp (reusing its buffer).
// Anything still buffered is flushed first. A non-success status is not an
// error here: it is in resp.Status, and resp.Err() turns it into one.
func (c *Conn) Receive(resp *Response) error {
	if err := c.readDeadline(); err != nil {
		return err
	}
	if err := ReadResponse(c.br, resp, c.opts.MaxValueSize); err != nil {
		c.broken = true
		return wrapNetErr(err)
	}
	return nil
}

// RoundTrip sends req (with a fresh opaque if it has none), flushes and reads
// its response, skipping nothing: the caller must not have unread responses.
func (c *Conn) RoundTrip(req *Request, resp *Response) error {
	if req.Opaque == 0 {
		req.Opaque = c.NextOpaque()
	}
	if err := c.Send(req); err != nil {
		return err
	}
	if err := c.Receive(resp); err != nil {
		return err
	}
	if resp.Opaque != req.Opaque {
		c.broken = true
		return fmt.Errorf("%w: response opaque %d for request %d", ErrProtocol, resp.Opaque, req.Opaque)
	}
	return nil
}

// Stats sends a binary Stat request for group ("" for the general stats) and
// collects the multi-packet answer, which ends with an empty key.
func (c *Conn) Stats(group string) (map[string]string, error) {
	req := Request{Opcode: OpStat, Key: group, Opaque: c.NextOpaque()}
	if err := c.Send(&req); err != nil {
		return nil, err
	}
	stats := make(map[string]string)
	var resp Response
	for i := 0; ; i++ {
		if err := c.Receive(&resp); err != nil {
			return nil, err
		}
		if resp.Opaque != req.Opaque {
			c.broken = true
			return nil, fmt.Errorf("%w: stat response opaque %d for request %d", ErrProtocol, resp.Opaque, req.Opaque)
		}
		if err := resp.Err(); err != nil {
			return nil, err
		}
		if len(resp.Key) == 0 {
			return stats, nil
		}
		stats[string(resp.Key)] = string(resp.Value)
	}
}

// ReadLine reads one text reply line, verbatim without CRLF (valid until the
// next read). Error replies are returned as lines, not errors, so that a
// caller mirroring lua-resty-memcached can hand them back as they are; use
// ParseErrorLine to classify one.
func (c *Conn) ReadLine() ([]byte, error) {
	if err := c.readDeadline(); err != nil {
		return nil, err
	}
	line, err := ReadLine(c.br)
	if err != nil {
		c.broken = true
		return nil, wrapNetErr(err)
	}
	return line, nil
}

// ReadValue reads the next item of a text retrieval reply into v; false at
// END. An error reply is returned as a *ServerError.
func (c *Conn) ReadValue(v *TextValue) (bool, error) {
	if err := c.readDeadline(); err != nil {
		return false, err
	}
	ok, err := ReadTextValue(c.br, v, c.opts.MaxValueSize)
	if err != nil {
		return false, c.fail(err)
	}
	return ok, nil
}

// Buffered reports how many response bytes have arrived but not been read.
func (c *Conn) Buffered() int { return c.br.Buffered() }

// Close closes the socket. Closing twice returns ErrClosed.
func (c *Conn) Close() error {
	if c.closed {
		return ErrClosed
	}
	c.closed = true
	return c.nc.Close()
}
