package memcached

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Server is one entry of a server list: "host:port" or "host:port weight"
// (a unix socket path may stand for host:port).
type Server struct {
	Addr   string
	Weight uint32 // 0 counts as 1, as in libmemcached
}

// ParseServer parses "host:port", "host:port weight" or "host" (port 11211).
func ParseServer(s string) (Server, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return Server{}, fmt.Errorf("memcached: bad server %q: want \"host:port [weight]\"", s)
	}
	srv := Server{Addr: f[0], Weight: 1}
	if !strings.HasPrefix(srv.Addr, "/") && !strings.HasPrefix(srv.Addr, "@") {
		if _, _, err := net.SplitHostPort(srv.Addr); err != nil {
			srv.Addr = net.JoinHostPort(srv.Addr, "11211")
			if _, _, err := net.SplitHostPort(srv.Addr); err != nil {
				return Server{}, fmt.Errorf("memcached: bad server %q: %v", s, err)
			}
		}
	}
	if len(f) == 2 {
		w, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return Server{}, fmt.Errorf("memcached: bad weight in server %q: %v", s, err)
		}
		srv.Weight = uint32(w)
	}
	return srv, nil
}

// ParseServers parses each entry with ParseServer.
func ParseServers(list []string) ([]Server, error) {
	out := make([]Server, 0, len(list))
	for _, s := range list {
		srv, err := ParseServer(s)
		if err != nil {
			return nil, err
		}
		out = append(out, srv)
	}
	return out, nil
}

// Selector maps a key to the index of a server in its list, skipping servers
// marked down. Implementations are safe for concurrent use.
type Selector interface {
	// Pick returns the server index for key, or ErrServerDown when every
	// candidate is down (ErrNoServers when there are none).
	Pick(key string) (int, error)
	// MarkDown keeps server i out of Pick until the given time.
	MarkDown(i int, until time.Time)
	// MarkUp returns server i to Pick at once.
	MarkUp(i int)
	// Servers returns the server list, in configuration order.
	Servers() []Server
}

// downSet records, per server, until when it is down (unix nanoseconds).
type downSet []atomic.Int64

func (d downSet) isDown(i int, now int64) bool { return d[i].Load() > now }

// KetamaPointsPerServer is libmemcached's MEMCACHED_POINTS_PER_SERVER_KETAMA.
const KetamaPointsPerServer = 160

type ketamaPoint struct {
	hash   uint32
	server int
}

// KetamaSelector is libmemcached's weighted ketama continuum
// (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED; php-memcached's
// OPT_LIBKETAMA_COMPATIBLE; twemproxy's ketama with hash md5), key for key:
//
//   - server i gets floor(float32(w_i/Σw) * 160/4 * n + 1e-10) * 4 points,
//     where n is the number of servers;
//   - point group k of a server is MD5("host-k"), or MD5("host:port-k") when
//     the port is not 11211 (a unix path is used as it is), and each digest
//     yields four points, its little-endian 32-bit words;
//   - points are sorted by value, ties by server index;
//   - a key's hash is the first little-endian word of MD5(key), and the key
//     goes to the first point at or after it, wrapping past the last.
//
// When the chosen server is marked down the key moves to the next point of
// another server that is up, and back when the server is up again.
type KetamaSelector struct {
	servers []Server
	points  []ketamaPoint
	down    downSet
}

// NewKetama builds the continuum for servers.
func NewKetama(servers []Server) (*KetamaSelector, error) {
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	k := &KetamaSelector{servers: slices.Clone(servers), down: make(downSet, len(servers))}
	var total uint64
	for i := range k.servers {
		if k.servers[i].Weight == 0 {
			k.servers[i].Weight = 1
		}
		total += uint64(k.servers[i].Weight)
	}
	n := float32(len(servers))
	for i, s := range k.servers {
		pct := float32(s.Weight) / float32(total)
		// The float32 steps and the tiny addend mirror libmemcached's C so
		// that point counts match it bit for bit.
		per := int(math.Floor(float64(float32(float64(pct*KetamaPointsPerServer/4*n) + 0.0000000001))))
		host := ketamaHost(s.Addr)
		buf := make([]byte, 0, len(host)+12)
		for g := 0; g < per; g++ {
			buf = strconv.AppendInt(append(append(buf[:0], host...), '-'), int64(g), 10)
			sum := md5.Sum(buf)
			for w := 0; w < 4; w++ {
				k.points = append(k.points, ketamaPoint{binary.LittleEndian.Uint32(sum[w*4:]), i})
			}
		}
	}
	slices.SortFunc(k.points, func(a, b ketamaPoint) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		return a.server - b.server
	})
	return k, nil
}

// ketamaHost is the string libmemcached hashes for a server: the host alone
// on the default port, else host:port.
func ketamaHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if port == "11211" {
		return host
	}
	return host + ":" + port
}

// KetamaHash is the key hash ketama uses: the first little-endian 32-bit word
// of MD5(key).
func KetamaHash(key string) uint32 {
	sum := md5.Sum([]byte(key))
	return binary.LittleEndian.Uint32(sum[:4])
}

// Pick implements Selector.
func (k *KetamaSelector) Pick(key string) (int, error) {
	h := KetamaHash(key)
	i, _ := slices.BinarySearchFunc(k.points, h, func(p ketamaPoint, h uint32) int {
		if p.hash < h {
			return -1
		}
		if p.hash > h {
			return 1
		}
		return 0
	})
	if i == len(k.points) {
		i = 0
	}
	first := k.points[i].server
	if k.down[first].Load() == 0 {
		return first, nil
	}
	now := time.Now().UnixNano()
	if !k.down.isDown(first, now) {
		return first, nil
	}
	for j := 1; j < len(k.points); j++ {
		s := k.points[(i+j)%len(k.points)].server
		if !k.down.isDown(s, now) {
			return s, nil
		}
	}
	return first, fmt.Errorf("%w: %s (and every other server)", ErrServerDown, k.servers[first].Addr)
}

// MarkDown implements Selector.
func (k *KetamaSelector) MarkDown(i int, until time.Time) { k.down[i].Store(until.UnixNano()) }

// MarkUp implements Selector.
func (k *KetamaSelector) MarkUp(i int) { k.down[i].Store(0) }

// Servers implements Selector.
func (k *KetamaSelector) Servers() []Server { return k.servers }

// ModuloSelector is gomemcache's ServerList distribution: CRC32-IEEE(key) modulo the
// number of servers (weights ignored). A key whose server is down goes to the
// next server in list order that is up.
type ModuloSelector struct {
	servers []Server
	down    downSet
}

// NewModulo returns a ModuloSelector over servers.
func NewModulo(servers []Server) (*ModuloSelector, error) {
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	return &ModuloSelector{servers: slices.Clone(servers), down: make(downSet, len(servers))}, nil
}

// Pick implements Selector.
func (m *ModuloSelector) Pick(key string) (int, error) {
	n := len(m.servers)
	first := int(crc32.ChecksumIEEE([]byte(key)) % uint32(n))
	now := time.Now().UnixNano()
	for j := 0; j < n; j++ {
		if s := (first + j) % n; !m.down.isDown(s, now) {
			return s, nil
		}
	}
	return first, fmt.Errorf("%w: %s (and every other server)", ErrServerDown, m.servers[first].Addr)
}

// MarkDown implements Selector.
func (m *ModuloSelector) MarkDown(i int, until time.Time) { m.down[i].Store(until.UnixNano()) }

// MarkUp implements Selector.
func (m *ModuloSelector) MarkUp(i int) { m.down[i].Store(0) }

// Servers implements Selector.
func (m *ModuloSelector) Servers() []Server { return m.servers }
