package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"luaserve/memcached"
)

// Version is what the server reports for "version" and in stats: the
// memcached release whose behaviour it reproduces, so that clients keying
// features off the version see what they would see on the real one.
const Version = "1.6.18"

// Defaults for zero Config fields, memcached's own defaults.
const (
	DefaultMaxBytes    = 64 << 20
	DefaultMaxItemSize = memcached.DefaultItemSize
)

// Config configures a Server. Zero values mean memcached's defaults.
type Config struct {
	// Addr is where Start listens: "127.0.0.1:11211", "127.0.0.1:0" for a
	// free port, or "unix:/path" for a unix socket.
	Addr string
	// MaxBytes is the memory limit for items (memcached -m).
	MaxBytes int64
	// MaxItemSize is the largest item, header included (memcached -I).
	MaxItemSize int
	// SASLUser and SASLPassword, when set, require SASL PLAIN
	// authentication and make the server binary-only, as memcached -S does.
	SASLUser, SASLPassword string
	// Logf, when set, receives connection-level errors.
	Logf func(format string, args ...any)
}

func (c Config) maxBytes() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return DefaultMaxBytes
}

func (c Config) maxItemSize() int {
	if c.MaxItemSize > 0 {
		return c.MaxItemSize
	}
	return DefaultMaxItemSize
}

func (c Config) sasl() bool { return c.SASLUser != "" || c.SASLPassword != "" }

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("memcached/server: server closed")

// Server is an embedded memcached. Its item store is shared by all of its
// listeners and connections.
type Server struct {
	cfg     Config
	st      *store
	started time.Time
	pid     int

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}

	currConns  atomic.Int64
	totalConns atomic.Uint64
	verbosity  atomic.Uint32
	bytesRead  atomic.Uint64
	bytesWrit  atomic.Uint64
}

// New returns a Server that is not listening yet; see Serve.
func New(cfg Config) (*Server, error) {
	if cfg.MaxBytes < 0 || cfg.MaxItemSize < 0 {
		return nil, fmt.Errorf("memcached/server: negative MaxBytes or MaxItemSize")
	}
	if cfg.maxItemSize() < 1024 {
		return nil, fmt.Errorf("memcached/server: MaxItemSize %d is below memcached's minimum of 1024", cfg.maxItemSize())
	}
	s := &Server{
		cfg:     cfg,
		st:      newStore(cfg.maxBytes(), cfg.maxItemSize(), nil),
		started: time.Now(),
		pid:     os.Getpid(),
		conns:   make(map[*conn]struct{}),
		done:    make(chan struct{}),
	}
	s.wg.Add(1)
	go s.reaper()
	return s, nil
}

// Start creates a server, listens on cfg.Addr and serves in the background.
func Start(cfg Config) (*Server, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	network, addr := "tcp", cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:11211"
	}
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("memcached/server: listen: %w", err)
	}
	if !s.track(l) {
		l.Close()
		return nil, ErrServerClosed
	}
	go func() {
		defer s.wg.Done()
		s.serve(l) //nolint:errcheck // ends with Close
	}()
	return s, nil
}

// track registers a listener and counts its accept loop in s.wg; the loop
// must call s.wg.Done when it ends.
func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.lns = append(s.lns, l)
	s.wg.Add(1)
	return true
}

// Serve accepts connections on l until Close; it always returns a non-nil
// error, ErrServerClosed after Close. Close waits for Serve to return.
func (s *Server) Serve(l net.Listener) error {
	if !s.track(l) {
		return ErrServerClosed
	}
	defer s.wg.Done()
	return s.serve(l)
}

func (s *Server) serve(l net.Listener) error {
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: back off and retry,
			// as memcached keeps its listener through them.
			s.logf("memcached/server: accept: %v", err)
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		c.id = s.connID()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// firstConnID is where connection ids start, after the listener's, as file
// descriptors do in memcached.
const firstConnID = 24

// connID returns the lowest id no live connection uses, the way the kernel
// hands out file descriptors; called with s.mu held.
func (s *Server) connID() int {
	used := make(map[int]bool, len(s.conns))
	for c := range s.conns {
		used[c.id] = true
	}
	id := firstConnID
	for used[id] {
		id++
	}
	return id
}

// Addr returns the address of the first listener, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0].Addr()
}

// Close stops accepting, closes every connection and waits for the server's
// goroutines to end. Calling it again is harmless.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	for _, l := range s.lns {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// reaper drops expired items in small steps so that memory comes back even
// for keys nobody asks for again (memcached's LRU crawler does this).
func (s *Server) reaper() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.st.reap(1000)
		}
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

func (s *Server) port() int {
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}
