package engine

import (
	"bytes"
	"cmp"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Router picks the server block for a connection and Host header. It is built
// once per Config, read-only afterwards and safe for concurrent use; neither
// Server nor Server.Match allocates.
type Router struct {
	addrs   map[string]*addrServers // by Listen.Addr
	ports   map[string]*addrServers // wildcard listens (":port") by port
	listens []Listen
	first   *Server
}

// addrServers holds the virtual servers sharing one listen address.
type addrServers struct {
	def      *Server
	explicit bool // def came from default_server
	exact    map[string]*Server
	leading  map[string]*Server // ".example.com" for "*.example.com"
	trailing map[string]*Server // "www.example." for "www.example.*"
	regex    []nameRegex
	servers  []*Server
}

type nameRegex struct {
	m   *matcher
	srv *Server
}

// NewRouter indexes h's servers by listen address and server name. When two
// servers on one address claim the same name, the first wins (nginx warns
// "conflicting server name" and does the same). "[::]:port" is the same
// wildcard as ":port" here, since Go listens on both families at once.
func NewRouter(h *HTTP) *Router {
	r := &Router{addrs: map[string]*addrServers{}, ports: map[string]*addrServers{}}
	if h == nil {
		return r
	}
	for _, s := range h.Servers {
		if r.first == nil {
			r.first = s
		}
		for _, l := range s.Listens {
			key := l.Addr
			if l.Network == "tcp" && strings.HasPrefix(key, "[::]:") {
				key = key[len("[::]"):]
			}
			as := r.addrs[key]
			if as == nil {
				as = &addrServers{exact: map[string]*Server{}, leading: map[string]*Server{}, trailing: map[string]*Server{}}
				r.addrs[key] = as
				if l.Network == "tcp" && key[0] == ':' {
					r.ports[key[1:]] = as
					r.addrs["[::]"+key] = as
				}
				l.Addr = key
				r.listens = append(r.listens, l)
			} else if l.ReusePort {
				for i := range r.listens {
					if r.listens[i].Addr == key {
						r.listens[i].ReusePort = true
					}
				}
			}
			if as.def == nil || l.DefaultServer && !as.explicit {
				as.def, as.explicit = s, l.DefaultServer
			}
			if as.hasServer(s) {
				continue
			}
			as.servers = append(as.servers, s)
			for _, n := range s.Names {
				var m map[string]*Server
				switch n.Kind {
				case NameExact:
					m = as.exact
				case NameLeadingWildcard:
					m = as.leading
				case NameTrailingWildcard:
					m = as.trailing
				case NameRegex:
					if mt, err := newMatcher(n.Name); err == nil {
						as.regex = append(as.regex, nameRegex{m: mt, srv: s})
					}
					continue
				}
				if _, dup := m[n.Name]; !dup {
					m[n.Name] = s
				}
			}
		}
	}
	// Like nginx, bind only the wildcard when a port also has specific
	// addresses; Server then needs the connection's real local address to
	// tell them apart.
	r.listens = slices.DeleteFunc(r.listens, func(l Listen) bool {
		if l.Network != "tcp" || l.Addr[0] == ':' {
			return false
		}
		i := lastColon(l.Addr)
		return i >= 0 && r.ports[l.Addr[i+1:]] != nil
	})
	return r
}

// hasServer reports whether s is already indexed here ("listen 80" and
// "listen [::]:80" in one server land in the same group).
func (as *addrServers) hasServer(s *Server) bool {
	return slices.Contains(as.servers, s)
}

// Listens returns the distinct listen addresses over all servers, in config
// order; the runtime opens one listener for each. A specific "ip:port" is
// left out when the same port also has a wildcard listen (nginx binds only
// the wildcard then). The slice must not be modified.
func (r *Router) Listens() []Listen { return r.listens }

// maxHostLen bounds the Host header we try to match; longer names cannot be
// valid DNS names and go to the default server.
const maxHostLen = 255

// Server returns the server block for a connection that arrived on
// localAddr — the connection's real local "ip:port" (which falls back to the
// wildcard ":port" group when no server listens on that exact address), or a
// Listen.Addr from Listens, or a unix socket path — and its Host
// header (any port is stripped, matching is case-insensitive). It follows
// nginx: exact name, longest leading wildcard, longest trailing wildcard,
// first matching regex in config order, else the address's default server.
func (r *Router) Server(localAddr string, host []byte) *Server {
	as := r.addrs[localAddr]
	if as == nil {
		if i := lastColon(localAddr); i >= 0 {
			as = r.ports[localAddr[i+1:]]
		}
		if as == nil {
			return r.first
		}
	}
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := bytes.IndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if len(host) > maxHostLen {
		return as.def
	}
	var buf [maxHostLen]byte
	name := buf[:len(host)]
	for i, c := range host {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		name[i] = c
	}
	if s := as.exact[string(name)]; s != nil {
		return s
	}
	if len(as.leading) > 0 {
		for i := 0; i < len(name); i++ {
			if name[i] == '.' {
				if s := as.leading[string(name[i:])]; s != nil {
					return s
				}
			}
		}
	}
	if len(as.trailing) > 0 {
		for i := len(name) - 1; i >= 0; i-- {
			if name[i] == '.' {
				if s := as.trailing[string(name[:i+1])]; s != nil {
					return s
				}
			}
		}
	}
	for _, nr := range as.regex {
		ok, done := nr.m.backtrack(name, nil)
		if !done {
			ok = nr.m.std.MatchString(string(name))
		}
		if ok {
			return nr.srv
		}
	}
	return as.def
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ':':
			return i
		case ']':
			return -1
		}
	}
	return -1
}

// level is the search structure for one set of sibling locations.
type level struct {
	exact    map[string]*Location
	prefixes []*Location // plain and ^~, longest first
	regexes  []*Location // ~ and ~*, in config order
}

func buildLevel(locs []*Location) level {
	var lv level
	for _, l := range locs {
		switch l.Modifier {
		case "=":
			if lv.exact == nil {
				lv.exact = map[string]*Location{}
			}
			lv.exact[l.Pattern] = l
		case "~", "~*":
			lv.regexes = append(lv.regexes, l)
		case "", "^~":
			lv.prefixes = append(lv.prefixes, l)
		}
	}
	slices.SortStableFunc(lv.prefixes, func(a, b *Location) int { return cmp.Compare(len(b.Pattern), len(a.Pattern)) })
	return lv
}

// Match returns the location for path in nginx's order: an exact "=" match
// ends the search; otherwise the longest prefix is remembered and its nested
// locations searched; "^~" on that prefix skips regexes; regexes are then
// tried in config order (those nested in the longest prefix first), and the
// first match wins, after its own nested locations are searched; else the
// longest prefix. nil means no location matches (nginx answers 404 using
// s.Loc). caps, if not nil, receives the captures of the regex that decided.
func (s *Server) Match(path []byte, caps *Captures) *Location {
	if caps != nil {
		caps.reset()
	}
	l, _ := s.lv.find(path, caps)
	return l
}

// NamedLocation returns the "@name" location, or nil.
func (s *Server) NamedLocation(name string) *Location { return s.Named[name] }

// find mirrors ngx_http_core_find_location; final is nginx's NGX_OK (an exact
// or regex match that ends the search).
func (lv *level) find(path []byte, caps *Captures) (loc *Location, final bool) {
	if lv.exact != nil {
		if l := lv.exact[string(path)]; l != nil {
			return l, true
		}
	}
	var found *Location
	for _, p := range lv.prefixes {
		if len(path) >= len(p.Pattern) && string(path[:len(p.Pattern)]) == p.Pattern {
			found = p
			break
		}
	}
	noregex := false
	if found != nil {
		noregex = found.Modifier == "^~"
		nested, fin := found.lv.find(path, caps)
		if fin {
			return nested, true
		}
		if nested != nil {
			found = nested
		}
	}
	if !noregex {
		for _, r := range lv.regexes {
			if r.re.match(path, caps) {
				if caps != nil {
					caps.names = r.re.names
				}
				if nested, _ := r.lv.find(path, caps); nested != nil {
					return nested, true
				}
				return r, true
			}
		}
	}
	return found, false
}

// maxCaptures is how many groups ($0 included) Captures holds; later groups
// of a regex are not recorded.
const maxCaptures = 16

// Captures holds the groups of the location regex that matched, as index
// pairs into the matched path, so filling it never allocates. The zero value
// is empty. Its slices are valid only while the path is.
type Captures struct {
	n     int
	idx   [2 * maxCaptures]int
	names []string
}

func (c *Captures) reset() { c.n, c.names = 0, nil }

// Len returns the number of groups including $0, or 0 if no regex matched.
func (c *Captures) Len() int { return c.n }

// Group returns group i ($0 is the whole match) of subject, the path given to
// Match; nil when i is out of range or the group did not participate.
func (c *Captures) Group(subject []byte, i int) []byte {
	if i < 0 || i >= c.n || c.idx[2*i] < 0 {
		return nil
	}
	return subject[c.idx[2*i]:c.idx[2*i+1]]
}

// Lookup resolves a template variable name that refers to a capture: "0".."9"
// or the name of a named group.
func (c *Captures) Lookup(subject []byte, name string) ([]byte, bool) {
	if len(name) == 1 && name[0] >= '0' && name[0] <= '9' {
		i := int(name[0] - '0')
		return c.Group(subject, i), i < c.n
	}
	for i, n := range c.names {
		if n != "" && n == name && i < c.n {
			return c.Group(subject, i), true
		}
	}
	return nil, false
}

// matcher runs a compiled regexp/syntax program with a backtracker that
// records captures into a caller-provided fixed array; the standard regexp
// package can only return captures in a fresh slice.
type matcher struct {
	prog     *syntax.Prog
	anchored bool
	prefix   string // literal every match of an anchored regex starts with
	ncap     int    // capture slots recorded (even)
	names    []string
	std      *regexp.Regexp
	pool     sync.Pool // *btState
}

// maxBacktrackBits bounds the visited bitmap (prog size × input length);
// longer inputs go to the standard library, which allocates.
const maxBacktrackBits = 1 << 20

type btState struct {
	visited []uint32
	jobs    []btJob
	end     int
	cap     [2 * maxCaptures]int
}

type btJob struct {
	pc  uint32
	arg bool
	pos int
}

func newMatcher(expr string) (*matcher, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	names := re.CapNames()
	ncap := re.MaxCap()
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	n := 2 * (ncap + 1)
	if n > 2*maxCaptures {
		n = 2 * maxCaptures
	}
	std, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	m := &matcher{prog: prog, anchored: prog.StartCond()&syntax.EmptyBeginText != 0, ncap: n, names: names, std: std}
	if m.anchored {
		m.prefix, _ = prog.Prefix()
	}
	return m, nil
}

// matchLong handles inputs too long for the backtracker's bitmap.
func (m *matcher) matchLong(in []byte, caps *Captures) bool {
	if caps == nil {
		return m.std.Match(in)
	}
	idx := m.std.FindSubmatchIndex(in)
	if idx == nil {
		return false
	}
	caps.n = m.ncap / 2
	for i := 0; i < m.ncap; i++ {
		caps.idx[i] = idx[i]
	}
	caps.names = m.names
	return true
}

// match reports whether in matches (leftmost-first, like Perl and nginx's
// PCRE) and, when caps is not nil, fills it.
func (m *matcher) match(in []byte, caps *Captures) bool {
	ok, done := m.backtrack(in, caps)
	if !done {
		return m.matchLong(in, caps)
	}
	return ok
}

// backtrack is match without the fallback for long inputs (done is false
// then); it does not retain in, so callers may pass stack buffers.
func (m *matcher) backtrack(in []byte, caps *Captures) (ok, done bool) {
	if len(m.prefix) > 0 && (len(in) < len(m.prefix) || string(in[:len(m.prefix)]) != m.prefix) {
		// most anchored location regexes fail on their first bytes
		return false, true
	}
	if len(m.prog.Inst)*(len(in)+1) > maxBacktrackBits {
		return false, false
	}
	st, _ := m.pool.Get().(*btState)
	if st == nil {
		st = &btState{}
	}
	ok = m.run(st, in, caps != nil)
	if ok && caps != nil {
		caps.n = m.ncap / 2
		copy(caps.idx[:m.ncap], st.cap[:m.ncap])
		caps.names = m.names
	}
	m.pool.Put(st)
	return ok, true
}

func (m *matcher) run(st *btState, in []byte, wantCaps bool) bool {
	st.end = len(in)
	words := (len(m.prog.Inst)*(len(in)+1) + 31) / 32
	if cap(st.visited) < words {
		st.visited = make([]uint32, words)
	} else {
		st.visited = st.visited[:words]
		clear(st.visited)
	}
	ncap := 0
	if wantCaps {
		ncap = m.ncap
	}
	for i := range ncap {
		st.cap[i] = -1
	}
	for pos := 0; pos <= len(in); {
		if ncap > 0 {
			st.cap[0] = pos
		}
		if m.try(st, in, pos, ncap) {
			return true
		}
		if m.anchored || pos == len(in) {
			return false
		}
		_, w := step(in, pos)
		pos += w
	}
	return false
}

func step(in []byte, pos int) (rune, int) {
	if pos >= len(in) {
		return -1, 0
	}
	if c := in[pos]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRune(in[pos:])
}

func (st *btState) visit(pc uint32, pos int) bool {
	i := uint(int(pc)*(st.end+1) + pos)
	if st.visited[i/32]&(1<<(i&31)) != 0 {
		return false
	}
	st.visited[i/32] |= 1 << (i & 31)
	return true
}

func (m *matcher) push(st *btState, pc uint32, pos int, arg bool) {
	if m.prog.Inst[pc].Op != syntax.InstFail && (arg || st.visit(pc, pos)) {
		st.jobs = append(st.jobs, btJob{pc: pc, arg: arg, pos: pos})
	}
}

// try is regexp's backtracker (regexp/backtrack.go) specialised to
// leftmost-first matching over a byte slice.
func (m *matcher) try(st *btState, in []byte, start, ncap int) bool {
	inst := m.prog.Inst
	st.jobs = st.jobs[:0]
	m.push(st, uint32(m.prog.Start), start, false)
	for len(st.jobs) > 0 {
		j := st.jobs[len(st.jobs)-1]
		st.jobs = st.jobs[:len(st.jobs)-1]
		pc, pos, arg := j.pc, j.pos, j.arg
		goto skip
	check:
		if !st.visit(pc, pos) {
			continue
		}
	skip:
		switch ip := &inst[pc]; ip.Op {
		case syntax.InstFail:
			continue
		case syntax.InstAlt:
			if arg {
				arg = false
				pc = ip.Arg
				goto check
			}
			m.push(st, pc, pos, true)
			pc = ip.Out
			goto check
		case syntax.InstAltMatch:
			switch inst[ip.Out].Op {
			case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
				m.push(st, ip.Arg, pos, false)
				pc, pos = ip.Arg, st.end
				goto check
			}
			m.push(st, ip.Out, st.end, false)
			pc = ip.Out
			goto check
		case syntax.InstRune:
			r, w := step(in, pos)
			if w == 0 || !ip.MatchRune(r) {
				continue
			}
			pos += w
			pc = ip.Out
			goto check
		case syntax.InstRune1:
			r, w := step(in, pos)
			if w == 0 || r != ip.Rune[0] {
				continue
			}
			pos += w
			pc = ip.Out
			goto check
		case syntax.InstRuneAnyNotNL:
			r, w := step(in, pos)
			if w == 0 || r == '\n' {
				continue
			}
			pos += w
			pc = ip.Out
			goto check
		case syntax.InstRuneAny:
			_, w := step(in, pos)
			if w == 0 {
				continue
			}
			pos += w
			pc = ip.Out
			goto check
		case syntax.InstCapture:
			if arg {
				st.cap[ip.Arg] = pos
				continue
			}
			if int(ip.Arg) < ncap {
				m.push(st, pc, st.cap[ip.Arg], true)
				st.cap[ip.Arg] = pos
			}
			pc = ip.Out
			goto check
		case syntax.InstEmptyWidth:
			r1, r2 := rune(-1), rune(-1)
			if pos > 0 {
				r1, _ = utf8.DecodeLastRune(in[:pos])
			}
			if pos < st.end {
				r2, _ = step(in, pos)
			}
			if !ip.MatchEmptyWidth(r1, r2) {
				continue
			}
			pc = ip.Out
			goto check
		case syntax.InstNop:
			pc = ip.Out
			goto check
		case syntax.InstMatch:
			if ncap > 1 {
				st.cap[1] = pos
			}
			return true
		}
	}
	return false
}
