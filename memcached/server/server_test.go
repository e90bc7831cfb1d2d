package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func roundTrip(t *testing.T, c net.Conn, send string) string {
	t.Helper()
	_, err := c.Write([]byte(send))
	require.NoError(t, err)
	return string(readIdle(t, c, 100*time.Millisecond))
}

func TestStartUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mc.sock")
	s, err := Start(Config{Addr: "unix:" + path})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\n", roundTrip(t, c, "set a 0 0 1\r\n1\r\nget a\r\n"))
}

func TestConfigValidation(t *testing.T) {
	_, err := New(Config{MaxBytes: -1})
	assert.Error(t, err)
	_, err = New(Config{MaxItemSize: 100})
	assert.Error(t, err)
	_, err = Start(Config{Addr: "256.0.0.1:1"})
	assert.Error(t, err)
}

func TestCloseEndsConnectionsAndServe(t *testing.T) {
	s, err := New(Config{})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c := dial(t, l.Addr().String())
	assert.Equal(t, "VERSION "+Version+"\r\n", roundTrip(t, c, "version\r\n"))
	require.NoError(t, s.Close())
	select {
	case err := <-served:
		assert.ErrorIs(t, err, ErrServerClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.True(t, errors.Is(err, io.EOF) || isReset(err), "connection closed: %v", err)
	assert.ErrorIs(t, s.Serve(l), ErrServerClosed)
	require.NoError(t, s.Close(), "second Close is harmless")
}

func TestConfigLimits(t *testing.T) {
	s := startEmbedded(t, Config{MaxItemSize: 2048, MaxBytes: 64 << 10})
	c := dial(t, s.Addr().String())
	big := strings.Repeat("x", 2000)
	assert.Equal(t, "SERVER_ERROR object too large for cache\r\n", roundTrip(t, c, "set a 0 0 2000\r\n"+big+"\r\n"))
	assert.Equal(t, "STORED\r\n", roundTrip(t, c, "set a 0 0 1900\r\n"+big[:1900]+"\r\n"))
	// Fill far past 64 KiB: old items go, the newest stay.
	var sb strings.Builder
	for i := range 100 {
		fmt.Fprintf(&sb, "set k%d 0 0 1900 noreply\r\n%s\r\n", i, big[:1900])
	}
	roundTrip(t, c, sb.String())
	got := roundTrip(t, c, "get k0 k99\r\nstats\r\n")
	assert.True(t, strings.HasPrefix(got, "VALUE k99 0 1900\r\n"), "oldest evicted, newest kept")
	m := statLineRE.FindAllStringSubmatch(got, -1)
	stats := map[string]string{}
	for _, kv := range m {
		stats[kv[1]] = kv[2]
	}
	ev, _ := strconv.Atoi(stats["evictions"])
	bytesUsed, _ := strconv.Atoi(stats["bytes"])
	assert.Positive(t, ev)
	assert.LessOrEqual(t, bytesUsed, 64<<10)
	assert.Equal(t, "65536", stats["limit_maxbytes"])
}

// TestConcurrentClients hammers one key and private keys from many
// connections over both protocols; run it with -race.
func TestConcurrentClients(t *testing.T) {
	s := startEmbedded(t, Config{})
	const clients, rounds = 8, 200
	c0 := dial(t, s.Addr().String())
	require.Equal(t, "STORED\r\n", roundTrip(t, c0, "set ctr 0 0 1\r\n0\r\n"))
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			r := bufio.NewReader(c)
			for j := range rounds {
				k := fmt.Sprintf("c%d", i)
				v := strconv.Itoa(j)
				fmt.Fprintf(c, "incr ctr 1\r\nset %s 0 0 %d\r\n%s\r\nget %s\r\n", k, len(v), v, k)
				lines := make([]string, 5)
				for n := range lines {
					if lines[n], err = r.ReadString('\n'); err != nil {
						errs <- err
						return
					}
				}
				if lines[1] != "STORED\r\n" || lines[3] != v+"\r\n" || lines[4] != "END\r\n" {
					errs <- fmt.Errorf("client %d round %d: %q", i, j, lines)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, "VALUE ctr 0 4\r\n1600\r\nEND\r\n", roundTrip(t, c0, "get ctr\r\n"))
}

func TestPipelinedBatchOneWrite(t *testing.T) {
	s := startEmbedded(t, Config{})
	c := dial(t, s.Addr().String())
	var sb strings.Builder
	var want bytes.Buffer
	for i := range 15 {
		fmt.Fprintf(&sb, "set k%d 0 0 1\r\n%d\r\n", i, i%10)
		want.WriteString("STORED\r\n")
	}
	assert.Equal(t, want.String(), roundTrip(t, c, sb.String()))
}

// curr_connections is masked in the differential cases (memcached may still
// count a connection the previous case closed), so it is checked here.
func TestCurrConnectionsCountsClients(t *testing.T) {
	s, err := Start(Config{Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	defer s.Close()
	stat := func(c net.Conn) int {
		_, err := c.Write([]byte("stats\r\n"))
		require.NoError(t, err)
		br := bufio.NewReader(c)
		n := -1
		for {
			line, err := br.ReadString('\n')
			require.NoError(t, err)
			if line == "END\r\n" {
				return n
			}
			if v, ok := strings.CutPrefix(line, "STAT curr_connections "); ok {
				n, err = strconv.Atoi(strings.TrimSpace(v))
				require.NoError(t, err)
			}
		}
	}
	a, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	defer a.Close()
	one := stat(a)
	b, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	require.Equal(t, one+1, stat(b))
	b.Close()
	require.Eventually(t, func() bool { return stat(a) == one }, 2*time.Second, 10*time.Millisecond)
}
