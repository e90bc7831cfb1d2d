package memcached

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// libmemcachedProbe is a tiny C program that asks libmemcached itself which
// server (index) each key of stdin goes to, under weighted ketama.
const libmemcachedProbe = `
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  memcached_st *m = memcached_create(NULL);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
  for (int i = 1; i + 2 < argc; i += 3)
    memcached_server_add_with_weight(m, argv[i], (in_port_t)atoi(argv[i+1]), (uint32_t)atoi(argv[i+2]));
  char line[512];
  while (fgets(line, sizeof line, stdin)) {
    size_t n = strlen(line);
    if (n && line[n-1] == '\n') line[--n] = 0;
    printf("%u %u\n", memcached_generate_hash(m, line, n), memcached_generate_hash_value(line, n, MEMCACHED_HASH_MD5));
  }
  memcached_free(m);
  return 0;
}
`

// buildProbe compiles libmemcachedProbe, or skips the test with the reason.
func buildProbe(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no C compiler (gcc) to build the libmemcached probe: apt-get install gcc libmemcached-dev")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	require.NoError(t, os.WriteFile(src, []byte(libmemcachedProbe), 0o644))
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command(cc, "-O1", "-o", bin, src, "-lmemcached").CombinedOutput(); err != nil {
		t.Skipf("cannot build the libmemcached probe (apt-get install libmemcached-dev): %v\n%s", err, out)
	}
	return bin
}

// TestKetamaMatchesLibmemcached checks key-for-key agreement with
// libmemcached's weighted ketama over server lists that exercise the default
// port (hashed without it), other ports, unequal weights, weight 0 and a
// single server.
func TestKetamaMatchesLibmemcached(t *testing.T) {
	probe := buildProbe(t)
	lists := [][]string{
		{"127.0.0.1:11211", "127.0.0.2:11211", "127.0.0.3:11211"},
		{"10.0.1.1:11211 600", "10.0.1.2:11211 300", "10.0.1.3:11211 200", "10.0.1.4:11211 350",
			"10.0.1.5:11211 1000", "10.0.1.6:11211 800", "10.0.1.7:11211 950", "10.0.1.8:11211 100"},
		{"cache-a:11211", "cache-b:11212 2", "cache-c:22122 3", "cache-d:11213 0"},
		{"localhost:11311"},
		{"127.0.0.1:20001 7", "127.0.0.1:20002 13", "127.0.0.1:20003 1", "127.0.0.1:20004 1", "127.0.0.1:20005 29"},
	}
	var keys []string
	for i := 0; i < 2000; i++ {
		keys = append(keys, fmt.Sprintf("key:%d", i))
	}
	keys = append(keys, "", "a", "foo", "user/1234/profile", strings.Repeat("x", 250))
	for _, list := range lists {
		t.Run(strings.Join(list, ","), func(t *testing.T) {
			servers, err := ParseServers(list)
			require.NoError(t, err)
			k, err := NewKetama(servers)
			require.NoError(t, err)
			var args []string
			for _, s := range servers {
				host, port, _ := strings.Cut(s.Addr, ":")
				w := s.Weight
				args = append(args, host, port, strconv.Itoa(int(w)))
			}
			cmd := exec.Command(probe, args...)
			cmd.Stdin = strings.NewReader(strings.Join(keys, "\n") + "\n")
			out, err := cmd.Output()
			require.NoError(t, err)
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			mismatches := 0
			for _, key := range keys {
				require.True(t, sc.Scan(), "probe output ended early")
				var want int
				var wantHash uint32
				_, err := fmt.Sscanf(sc.Text(), "%d %d", &want, &wantHash)
				require.NoError(t, err)
				assert.Equal(t, wantHash, KetamaHash(key), "hash of %q", key)
				got, err := k.Pick(key)
				require.NoError(t, err)
				if got != want {
					mismatches++
					if mismatches < 5 {
						t.Errorf("key %q: libmemcached picks %d (%s), we pick %d (%s)", key, want, servers[want].Addr, got, servers[got].Addr)
					}
				}
			}
			assert.Zero(t, mismatches, "of %d keys", len(keys))
		})
	}
}

func TestKetamaPointCounts(t *testing.T) {
	tests := []struct {
		list []string
		want []int // points per server
	}{
		{[]string{"a:1", "b:1", "c:1"}, []int{160, 160, 160}},
		{[]string{"a:1 1", "b:1 3"}, []int{80, 240}},
		{[]string{"a:1 0", "b:1 1"}, []int{160, 160}},
		{[]string{"a:1"}, []int{160}},
	}
	for _, tt := range tests {
		servers, err := ParseServers(tt.list)
		require.NoError(t, err)
		k, err := NewKetama(servers)
		require.NoError(t, err)
		got := make([]int, len(servers))
		for _, p := range k.points {
			got[p.server]++
		}
		assert.Equal(t, tt.want, got, "%v", tt.list)
	}
}

func TestKetamaHostString(t *testing.T) {
	assert.Equal(t, "10.0.0.1", ketamaHost("10.0.0.1:11211"))
	assert.Equal(t, "10.0.0.1:11212", ketamaHost("10.0.0.1:11212"))
	assert.Equal(t, "/run/mc.sock", ketamaHost("/run/mc.sock"))
}

func TestParseServer(t *testing.T) {
	tests := []struct {
		in      string
		want    Server
		wantErr bool
	}{
		{"127.0.0.1:11211", Server{"127.0.0.1:11211", 1}, false},
		{"h:1 5", Server{"h:1", 5}, false},
		{"  h:1   0 ", Server{"h:1", 0}, false},
		{"cachehost", Server{"cachehost:11211", 1}, false},
		{"[::1]:11211", Server{"[::1]:11211", 1}, false},
		{"/tmp/mc.sock", Server{"/tmp/mc.sock", 1}, false},
		{"", Server{}, true},
		{"h:1 x", Server{}, true},
		{"h:1 1 2", Server{}, true},
	}
	for _, tt := range tests {
		got, err := ParseServer(tt.in)
		if tt.wantErr {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}

// TestSelectorFailover: keys of a down server move elsewhere, others stay,
// and all come back when it is up again — for both distributions.
func TestSelectorFailover(t *testing.T) {
	servers, err := ParseServers([]string{"a:1", "b:1", "c:1", "d:1"})
	require.NoError(t, err)
	k, err := NewKetama(servers)
	require.NoError(t, err)
	m, err := NewModulo(servers)
	require.NoError(t, err)
	for _, sel := range []Selector{k, m} {
		t.Run(fmt.Sprintf("%T", sel), func(t *testing.T) {
			before := map[string]int{}
			for i := 0; i < 1000; i++ {
				key := strconv.Itoa(i)
				before[key], err = sel.Pick(key)
				require.NoError(t, err)
			}
			sel.MarkDown(1, time.Now().Add(time.Hour))
			moved := 0
			for key, was := range before {
				now, err := sel.Pick(key)
				require.NoError(t, err)
				assert.NotEqual(t, 1, now)
				if was != 1 {
					assert.Equal(t, was, now, "a key of a live server must not move")
				} else {
					moved++
				}
			}
			assert.Greater(t, moved, 100)
			sel.MarkDown(1, time.Now().Add(-time.Second)) // retry interval over
			for key, was := range before {
				now, _ := sel.Pick(key)
				assert.Equal(t, was, now)
			}
			for i := range servers {
				sel.MarkDown(i, time.Now().Add(time.Hour))
			}
			_, err := sel.Pick("x")
			assert.ErrorIs(t, err, ErrServerDown)
			for i := range servers {
				sel.MarkUp(i)
			}
		})
	}
}

func TestModuloMatchesGomemcache(t *testing.T) {
	// gomemcache's ServerList.PickServer: crc32.ChecksumIEEE(key) % len;
	// the expected indexes were computed independently with Python's zlib.crc32.
	servers, _ := ParseServers([]string{"a:1", "b:1", "c:1"})
	m, _ := NewModulo(servers)
	for key, want := range map[string]int{"foo": 2, "bar": 2, "baz": 0, "key:1": 0} {
		got, err := m.Pick(key)
		require.NoError(t, err)
		assert.Equal(t, want, got, key)
	}
}
