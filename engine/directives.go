package engine

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// argMask is the set of argument counts a directive accepts, like nginx's
// NGX_CONF_TAKE* flags.
type argMask uint16

const (
	args0 argMask = 1 << iota
	args1
	args2
	args3
	argsMore1 // one or more
	argsMore2 // two or more
	argsFlag  // exactly one, "on" or "off"

	args12 = args1 | args2
)

// dirSpec is one row of the directive table: where a directive may appear,
// how many arguments it takes, whether it has a block, and what it does.
type dirSpec struct {
	ctx   ctxMask
	args  argMask
	block bool // a "{ … }" of directives (or a Lua body for *_by_lua_block)
	apply func(b *builder, d *Directive, sc *scope) error
}

// check validates context, block-ness and arity in nginx's order and wording.
func (s *dirSpec) check(b *builder, d *Directive, ctx ctxMask) error {
	if s.ctx&ctx == 0 {
		return b.errf(d, "%q directive is not allowed here", d.Name)
	}
	if s.block && !d.HasBlock {
		return b.errf(d, "directive %q has no opening \"{\"", d.Name)
	}
	if !s.block && d.HasBlock {
		return b.errf(d, "directive %q is not terminated by \";\"", d.Name)
	}
	n := len(d.Args)
	ok := false
	switch {
	case s.args&argsFlag != 0:
		ok = n == 1
	case s.args&argsMore1 != 0:
		ok = n >= 1
	case s.args&argsMore2 != 0:
		ok = n >= 2
	default:
		ok = n <= 3 && s.args&(1<<n) != 0
	}
	if !ok {
		return b.errf(d, "invalid number of arguments in %q directive", d.Name)
	}
	return nil
}

const ctxHSL = ctxHTTP | ctxServer | ctxLocation

// directiveTable is the process-wide, read-only table of known directives;
// "include" is handled by the walker itself.
var directiveTable map[string]*dirSpec

func init() {
	t := map[string]*dirSpec{
		// process directives: accepted, mostly meaningless for one Go process
		"worker_processes": {ctx: ctxMain, args: args1, apply: func(b *builder, d *Directive, _ *scope) error {
			if d.Args[0] != "1" {
				b.warn(d, `"worker_processes %s" is ignored: luaserve is one process; bound Lua concurrency with "lua_vm_pool_size"`, d.Args[0])
			}
			return nil
		}},
		"worker_connections":   {ctx: ctxEvents, args: args1, apply: applyNumber(nil)},
		"worker_rlimit_nofile": {ctx: ctxMain, args: args1, apply: applyNumber(nil)},
		"master_process":       {ctx: ctxMain, args: argsFlag, apply: applyFlag(nil)},
		"accept_mutex":         {ctx: ctxEvents, args: argsFlag, apply: applyFlag(nil)},
		"multi_accept":         {ctx: ctxEvents, args: argsFlag, apply: applyFlag(nil)},
		"use":                  {ctx: ctxEvents, args: args1, apply: ignore},
		"accept_mutex_delay":   {ctx: ctxEvents, args: args1, apply: applyTime(nil)},
		// Debian's nginx.conf loads lua-nginx-module this way; luaserve
		// has it built in.
		"load_module": {ctx: ctxMain, args: args1, apply: func(b *builder, d *Directive, _ *scope) error {
			b.warn(d, `"load_module %s" is ignored: luaserve's Lua support is built in`, d.Args[0])
			return nil
		}},
		"user": {ctx: ctxMain, args: args12, apply: func(b *builder, d *Directive, _ *scope) error {
			b.warn(d, `"user" is ignored: luaserve does not switch users`)
			return nil
		}},
		"pid": {ctx: ctxMain, args: args1, apply: func(b *builder, d *Directive, _ *scope) error {
			if err := b.once(d); err != nil {
				return err
			}
			b.cfg.PidFile = b.prefixed(d.Args[0])
			return nil
		}},
		"daemon": {ctx: ctxMain, args: argsFlag, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.once(d); err != nil {
				return err
			}
			return applyFlag(func(_ *scope, on bool) {
				b.cfg.Daemon = on
				if on {
					b.warn(d, `"daemon on" is ignored: luaserve never forks; run it under a supervisor`)
				}
			})(b, d, sc)
		}},
		"env": {ctx: ctxMain, args: args1, apply: func(b *builder, d *Directive, _ *scope) error {
			name, val, has := strings.Cut(d.Args[0], "=")
			b.cfg.Env = append(b.cfg.Env, EnvVar{Name: name, Value: val, HasValue: has})
			return nil
		}},
		"error_log":          {ctx: ctxMain | ctxHSL, args: argsMore1, apply: applyErrorLog},
		"memcached_embedded": {ctx: ctxMain | ctxHTTP, args: args12, apply: applyEmbedded},

		"events": {ctx: ctxMain, args: args0, block: true, apply: func(b *builder, d *Directive, _ *scope) error {
			if err := b.once(d); err != nil {
				return err
			}
			return b.walk(d.Block, &scope{ctx: ctxEvents}, 0)
		}},
		"http":     {ctx: ctxMain, args: args0, block: true, apply: applyHTTP},
		"server":   {ctx: ctxHTTP, args: args0, block: true, apply: applyServer},
		"location": {ctx: ctxServer | ctxLocation, args: args12, block: true, apply: applyLocation},
		"types":    {ctx: ctxHTTP, args: args0, block: true, apply: applyTypes},

		"listen":      {ctx: ctxServer, args: argsMore1, apply: applyListen},
		"server_name": {ctx: ctxServer, args: argsMore1, apply: applyServerName},
		"resolver": {ctx: ctxHSL, args: argsMore1, apply: func(b *builder, d *Directive, _ *scope) error {
			b.cfg.HTTP.Resolver = append([]string(nil), d.Args...)
			return nil
		}},
		"resolver_timeout": {ctx: ctxHSL, args: args1, apply: applyTime(nil)},
		"sendfile":         {ctx: ctxHSL, args: argsFlag, apply: applyFlag(nil)},
		"tcp_nopush":       {ctx: ctxHSL, args: argsFlag, apply: applyFlag(nil)},
		"tcp_nodelay":      {ctx: ctxHSL, args: argsFlag, apply: applyFlag(nil)},
		"server_tokens":    {ctx: ctxHSL, args: argsFlag, apply: applyFlag(nil)},

		"set":    {ctx: ctxServer | ctxLocation, args: args2, apply: applySet},
		"return": {ctx: ctxServer | ctxLocation, args: args12, apply: applyReturn},
		"root":   {ctx: ctxHSL, args: args1, apply: applyRoot},
		"index": {ctx: ctxHSL, args: argsMore1, apply: func(b *builder, d *Directive, sc *scope) error {
			if sc.loc.set&setIndex == 0 {
				sc.loc.Index = nil
			}
			sc.loc.set |= setIndex
			sc.loc.Index = append(sc.loc.Index, d.Args...)
			return nil
		}},
		"default_type": {ctx: ctxHSL, args: args1, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.setOnce(d, sc, setDefaultType); err != nil {
				return err
			}
			sc.loc.DefaultType = d.Args[0]
			return nil
		}},
		"client_max_body_size": {ctx: ctxHSL, args: args1, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.setOnce(d, sc, setBodySize); err != nil {
				return err
			}
			n, ok := parseSize(d.Args[0])
			if !ok {
				return b.errf(d, "%q directive invalid value", d.Name)
			}
			sc.loc.ClientMaxBodySize = n
			return nil
		}},
		"keepalive_timeout": {ctx: ctxHSL, args: args12, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.setOnce(d, sc, setKeepalive); err != nil {
				return err
			}
			v, ok := parseTime(d.Args[0])
			if !ok {
				return b.errf(d, "invalid value %q in %q directive", d.Args[0], d.Name)
			}
			sc.loc.KeepaliveTimeout = v
			return nil
		}},
		"access_log": {ctx: ctxHSL, args: argsMore1, apply: applyAccessLog},
		"underscores_in_headers": {ctx: ctxHTTP | ctxServer, args: argsFlag, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.setOnce(d, sc, setUnderscores); err != nil {
				return err
			}
			return applyFlag(func(sc *scope, on bool) { sc.loc.UnderscoresInHeaders = on })(b, d, sc)
		}},

		"lua_package_path":  {ctx: ctxHTTP, args: args1, apply: applyPackagePath},
		"lua_package_cpath": {ctx: ctxHTTP, args: args1, apply: applyPackagePath},
		"lua_code_cache": {ctx: ctxHSL, args: argsFlag, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.setOnce(d, sc, setCodeCache); err != nil {
				return err
			}
			return applyFlag(func(sc *scope, on bool) {
				sc.loc.LuaCodeCache = on
				if !on {
					b.warn(d, "lua_code_cache is off; this will hurt performance")
				}
			})(b, d, sc)
		}},
		"lua_shared_dict": {ctx: ctxHTTP, args: args2, apply: applySharedDict},
		// fasthttp reads the whole request body before any handler runs, so this only validates
		"lua_need_request_body": {ctx: ctxHSL, args: argsFlag, apply: applyFlag(nil)},
		"lua_request_timeout": {ctx: ctxHSL, args: args1, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.setOnce(d, sc, setReqTimeout); err != nil {
				return err
			}
			return applyTime(func(sc *scope, v int64) { sc.loc.LuaRequestTimeout = msDuration(v) })(b, d, sc)
		}},
		"lua_hot_reload": {ctx: ctxHTTP, args: argsFlag, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.once(d); err != nil {
				return err
			}
			return applyFlag(func(_ *scope, on bool) { b.cfg.HTTP.HotReload = on })(b, d, sc)
		}},
		"lua_vm_pool_size": {ctx: ctxHTTP, args: args1, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.once(d); err != nil {
				return err
			}
			return applyNumber(func(v int) { b.cfg.HTTP.VMPoolSize = v })(b, d, sc)
		}},
		"lua_socket_connect_timeout": {ctx: ctxHSL, args: args1, apply: socketTime(setConnectTimeout, func(s *SocketSettings, v int64) { s.ConnectTimeout = msDuration(v) })},
		"lua_socket_send_timeout":    {ctx: ctxHSL, args: args1, apply: socketTime(setSendTimeout, func(s *SocketSettings, v int64) { s.SendTimeout = msDuration(v) })},
		"lua_socket_read_timeout":    {ctx: ctxHSL, args: args1, apply: socketTime(setReadTimeout, func(s *SocketSettings, v int64) { s.ReadTimeout = msDuration(v) })},
		"lua_socket_keepalive_timeout": {ctx: ctxHSL, args: args1, apply: socketTime(setSockKeepalive, func(s *SocketSettings, v int64) {
			s.KeepaliveTimeout = msDuration(v)
		})},
		"lua_socket_pool_size": {ctx: ctxHSL, args: args1, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.setOnce(d, sc, setPoolSize); err != nil {
				return err
			}
			return applyNumber(func(v int) { sc.loc.Socket.PoolSize = v })(b, d, sc)
		}},
		"lua_socket_log_errors": {ctx: ctxHSL, args: argsFlag, apply: func(b *builder, d *Directive, sc *scope) error {
			if err := b.setOnce(d, sc, setLogErrors); err != nil {
				return err
			}
			return applyFlag(func(sc *scope, on bool) { sc.loc.Socket.LogErrors = on })(b, d, sc)
		}},
	}
	for _, ph := range []struct {
		phase string
		ctx   ctxMask
		bit   setBits
	}{
		{"init_by_lua", ctxHTTP, 0},
		{"init_worker_by_lua", ctxHTTP, 0},
		{"rewrite_by_lua", ctxHSL, setRewrite},
		{"access_by_lua", ctxHSL, setAccess},
		{"content_by_lua", ctxLocation, setContent},
		{"log_by_lua", ctxHSL, setLog},
	} {
		t[ph.phase] = &dirSpec{ctx: ph.ctx, args: args1, apply: applyLua(ph.phase, ph.bit, "")}
		t[ph.phase+"_block"] = &dirSpec{ctx: ph.ctx, args: args0, block: true, apply: applyLua(ph.phase, ph.bit, "block")}
		t[ph.phase+"_file"] = &dirSpec{ctx: ph.ctx, args: args1, apply: applyLua(ph.phase, ph.bit, "file")}
	}
	directiveTable = t
}

func ignore(*builder, *Directive, *scope) error { return nil }

func msDuration(v int64) time.Duration { return time.Duration(v) }

// once rejects a second occurrence of a main/http-level one-shot directive.
func (b *builder) once(d *Directive) error {
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	if b.seen[d.Name] {
		return b.errf(d, "%q directive is duplicate", d.Name)
	}
	b.seen[d.Name] = true
	return nil
}

// setOnce marks an inheritable setting as written here, rejecting a repeat
// in the same context as nginx does.
func (b *builder) setOnce(d *Directive, sc *scope, bit setBits) error {
	if sc.loc.set&bit != 0 {
		return b.errf(d, "%q directive is duplicate", d.Name)
	}
	sc.loc.set |= bit
	return nil
}

// prefixed makes p absolute under the prefix unless it already is.
func (b *builder) prefixed(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(b.cfg.Prefix, p)
}

func applyFlag(set func(sc *scope, on bool)) func(*builder, *Directive, *scope) error {
	return func(b *builder, d *Directive, sc *scope) error {
		var on bool
		switch strings.ToLower(d.Args[0]) {
		case "on":
			on = true
		case "off":
		default:
			return b.errf(d, "invalid value %q in %q directive, it must be \"on\" or \"off\"", d.Args[0], d.Name)
		}
		if set != nil {
			set(sc, on)
		}
		return nil
	}
}

func applyNumber(set func(int)) func(*builder, *Directive, *scope) error {
	return func(b *builder, d *Directive, _ *scope) error {
		n, err := strconv.Atoi(d.Args[0])
		if err != nil || n < 0 {
			if d.Name == "worker_processes" && d.Args[0] == "auto" {
				return nil
			}
			return b.errf(d, "%q directive invalid number", d.Name)
		}
		if set != nil {
			set(n)
		}
		return nil
	}
}

// applyTime parses an nginx time; set receives nanoseconds.
func applyTime(set func(sc *scope, v int64)) func(*builder, *Directive, *scope) error {
	return func(b *builder, d *Directive, sc *scope) error {
		v, ok := parseTime(d.Args[0])
		if !ok {
			return b.errf(d, "%q directive invalid value", d.Name)
		}
		if set != nil {
			set(sc, int64(v))
		}
		return nil
	}
}

func socketTime(bit setBits, set func(*SocketSettings, int64)) func(*builder, *Directive, *scope) error {
	return func(b *builder, d *Directive, sc *scope) error {
		if err := b.setOnce(d, sc, bit); err != nil {
			return err
		}
		return applyTime(func(sc *scope, v int64) { set(&sc.loc.Socket, v) })(b, d, sc)
	}
}

var logLevels = []string{"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"}

func applyErrorLog(b *builder, d *Directive, sc *scope) error {
	level := DefaultErrorLogLevel
	if len(d.Args) > 1 {
		level = d.Args[1]
		ok := false
		for _, l := range logLevels {
			ok = ok || l == level
		}
		if !ok || len(d.Args) > 2 {
			return b.errf(d, "invalid log level %q", d.Args[len(d.Args)-1])
		}
	}
	path := d.Args[0]
	if strings.HasPrefix(path, "syslog:") || strings.HasPrefix(path, "memory:") {
		return b.errf(d, "%q is not supported by luaserve; use a file or stderr", path)
	}
	if sc.ctx != ctxMain {
		b.warn(d, `"error_log" is only honoured in the main context; this one is ignored`)
		return nil
	}
	if b.seen["error_log"] {
		b.warn(d, `only the first "error_log" is used; this one is ignored`)
		return nil
	}
	_ = b.once(d)
	if path != "stderr" {
		path = b.prefixed(path)
	}
	b.cfg.ErrorLog = LogTarget{Path: path, Level: level}
	return nil
}

func applyEmbedded(b *builder, d *Directive, _ *scope) error {
	if b.cfg.Embedded != nil {
		return b.errf(d, "%q directive is duplicate", d.Name)
	}
	addr := d.Args[0]
	if _, _, err := splitHostPort(addr); err != nil {
		return b.errf(d, "invalid address %q in %q directive", addr, d.Name)
	}
	e := &EmbeddedMemcached{Addr: addr, Size: DefaultEmbeddedSize, File: d.File, Line: d.Line}
	if len(d.Args) == 2 {
		n, ok := parseSize(d.Args[1])
		if !ok || n == 0 {
			return b.errf(d, "invalid size %q in %q directive", d.Args[1], d.Name)
		}
		e.Size = n
	}
	b.cfg.Embedded = e
	return nil
}

// splitHostPort splits "host:port" with a numeric port 1..65535.
func splitHostPort(s string) (string, string, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", fmt.Errorf("missing port")
	}
	host, port := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") != strings.HasSuffix(host, "]") || strings.Contains(strings.Trim(host, "[]"), ":") && !strings.HasPrefix(host, "[") {
		return "", "", fmt.Errorf("bad host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("invalid port")
	}
	return host, port, nil
}

func applyHTTP(b *builder, d *Directive, _ *scope) error {
	if b.cfg.HTTP != nil {
		return b.errf(d, `"http" directive is duplicate`)
	}
	// Types stays nil without a types block: nginx then uses its
	// built-in html/gif/jpg types (see nginxDefaultTypes).
	h := &HTTP{HotReload: true, loc: newLocation(d, nil)}
	b.cfg.HTTP = h
	if err := b.walk(d.Block, &scope{ctx: ctxHTTP, loc: h.loc}, 0); err != nil {
		return err
	}
	h.Socket = h.loc.Socket
	if h.loc.set&setLogErrors == 0 {
		h.Socket.LogErrors = true
	}
	return nil
}

func applyServer(b *builder, d *Directive, _ *scope) error {
	s := &Server{File: d.File, Line: d.Line, Loc: newLocation(d, nil), Named: map[string]*Location{}}
	b.cfg.HTTP.Servers = append(b.cfg.HTTP.Servers, s)
	return b.walk(d.Block, &scope{ctx: ctxServer, srv: s, loc: s.Loc}, 0)
}

func applyTypes(b *builder, d *Directive, _ *scope) error {
	if b.cfg.HTTP.Types == nil {
		b.cfg.HTTP.Types = map[string]string{}
	}
	for _, c := range d.Block {
		if c.HasBlock {
			return b.errf(c, `unexpected "{"`)
		}
		for _, ext := range c.Args {
			b.cfg.HTTP.Types[strings.ToLower(ext)] = c.Name
		}
	}
	return nil
}

func applyLocation(b *builder, d *Directive, sc *scope) error {
	mod, name := "", d.Args[0]
	if len(d.Args) == 2 {
		mod, name = d.Args[0], d.Args[1]
		switch mod {
		case "=", "^~", "~", "~*":
		default:
			return b.errf(d, "invalid location modifier %q", mod)
		}
	} else {
		switch {
		case strings.HasPrefix(name, "="):
			mod, name = "=", name[1:]
		case strings.HasPrefix(name, "^~"):
			mod, name = "^~", name[2:]
		case strings.HasPrefix(name, "~*"):
			mod, name = "~*", name[2:]
		case strings.HasPrefix(name, "~"):
			mod, name = "~", name[1:]
		case strings.HasPrefix(name, "@"):
			mod = "@"
		}
	}
	var parent *Location
	if sc.ctx == ctxLocation {
		parent = sc.loc
	}
	l := newLocation(d, parent)
	l.Modifier, l.Pattern = mod, name
	if parent != nil {
		switch {
		case parent.Modifier == "=":
			return b.errf(d, "location %q cannot be inside the exact location %q", name, parent.Pattern)
		case parent.Modifier == "@":
			return b.errf(d, "location %q cannot be inside the named location %q", name, parent.Pattern)
		case mod == "@":
			return b.errf(d, "named location %q can be on the server level only", name)
		case !l.isRegex() && !parent.isRegex() && !strings.HasPrefix(name, parent.Pattern):
			return b.errf(d, "location %q is outside location %q", name, parent.Pattern)
		}
	}
	if l.isRegex() {
		expr := name
		if mod == "~*" {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return b.errf(d, "location regex %q cannot be compiled by Go's RE2 engine: %v", name, err)
		}
		l.Regexp = re
		if l.re, err = newMatcher(expr); err != nil {
			return b.errf(d, "location regex %q cannot be compiled: %v", name, err)
		}
	}
	siblings := sc.srv.Locations
	if parent != nil {
		siblings = parent.Locations
	}
	if mod == "@" {
		if sc.srv.Named[name] != nil {
			return b.errf(d, "duplicate location %q", name)
		}
		sc.srv.Named[name] = l
	} else if !l.isRegex() {
		for _, o := range siblings {
			if !o.isRegex() && o.Modifier != "@" && o.Pattern == name && (o.Modifier == "=") == (mod == "=") {
				return b.errf(d, "duplicate location %q", name)
			}
		}
	}
	if err := b.walk(d.Block, &scope{ctx: ctxLocation, srv: sc.srv, loc: l}, 0); err != nil {
		return err
	}
	if mod == "@" {
		return nil
	}
	if parent != nil {
		parent.Locations = append(parent.Locations, l)
	} else {
		sc.srv.Locations = append(sc.srv.Locations, l)
	}
	return nil
}

func (l *Location) isRegex() bool { return l.Modifier == "~" || l.Modifier == "~*" }

var listenOptions = map[string]bool{
	"default_server": true, "default": true, "reuseport": true, "bind": true, "deferred": true,
	"backlog=": true, "rcvbuf=": true, "sndbuf=": true, "so_keepalive=": true, "ipv6only=": true,
	"fastopen=": true, "accept_filter=": true, "setfib=": true,
}

func applyListen(b *builder, d *Directive, sc *scope) error {
	l := Listen{Network: "tcp", File: d.File, Line: d.Line}
	a := d.Args[0]
	switch {
	case strings.HasPrefix(a, "unix:"):
		l.Network, l.Addr = "unix", a[len("unix:"):]
		if l.Addr == "" {
			return b.errf(d, "no path in the unix domain socket %q of the \"listen\" directive", a)
		}
	case isDigits(a):
		p, err := strconv.Atoi(a)
		if err != nil || p < 1 || p > 65535 {
			return b.errf(d, "invalid port in %q of the \"listen\" directive", a)
		}
		l.Addr = ":" + a
	default:
		host, port := a, "80"
		if i := strings.LastIndexByte(a, ':'); i >= 0 && !strings.HasSuffix(a, "]") {
			host, port = a[:i], a[i+1:]
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return b.errf(d, "invalid port in %q of the \"listen\" directive", a)
		}
		if host == "" || strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
			return b.errf(d, "invalid host in %q of the \"listen\" directive", a)
		}
		if host == "*" || host == "0.0.0.0" {
			host = ""
		}
		l.Addr = host + ":" + port
	}
	for _, o := range d.Args[1:] {
		key := o
		if i := strings.IndexByte(o, '='); i >= 0 {
			key = o[:i+1]
		}
		switch {
		case o == "default_server" || o == "default":
			l.DefaultServer = true
		case o == "reuseport":
			l.ReusePort = true
		case o == "ssl" || o == "http2" || o == "quic" || o == "proxy_protocol":
			return b.errf(d, "the %q parameter of the \"listen\" directive is not supported by luaserve", o)
		case listenOptions[key]:
		default:
			return b.errf(d, "invalid parameter %q", o)
		}
	}
	for _, o := range sc.srv.Listens {
		if o.Addr == l.Addr && o.Network == l.Network {
			return b.errf(d, "duplicate listen %s", a)
		}
	}
	sc.srv.Listens = append(sc.srv.Listens, l)
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func applyServerName(b *builder, d *Directive, sc *scope) error {
	for _, raw := range d.Args {
		if strings.HasPrefix(raw, "~") {
			re, err := regexp.Compile(raw[1:])
			if err != nil {
				return b.errf(d, "server_name regex %q cannot be compiled by Go's RE2 engine: %v", raw[1:], err)
			}
			sc.srv.Names = append(sc.srv.Names, ServerName{Kind: NameRegex, Name: raw[1:], Raw: raw, Regexp: re})
			continue
		}
		n := strings.ToLower(raw)
		star := strings.Count(n, "*")
		switch {
		case star == 0 && strings.HasPrefix(n, ".") && len(n) > 1:
			sc.srv.Names = append(sc.srv.Names,
				ServerName{Kind: NameExact, Name: n[1:], Raw: raw},
				ServerName{Kind: NameLeadingWildcard, Name: n, Raw: raw})
		case star == 0:
			sc.srv.Names = append(sc.srv.Names, ServerName{Kind: NameExact, Name: n, Raw: raw})
		case star == 1 && strings.HasPrefix(n, "*.") && len(n) > 2:
			sc.srv.Names = append(sc.srv.Names, ServerName{Kind: NameLeadingWildcard, Name: n[1:], Raw: raw})
		case star == 1 && strings.HasSuffix(n, ".*") && len(n) > 2:
			sc.srv.Names = append(sc.srv.Names, ServerName{Kind: NameTrailingWildcard, Name: n[:len(n)-1], Raw: raw})
		default:
			return b.errf(d, "invalid server name or wildcard %q", raw)
		}
	}
	return nil
}

func applySet(b *builder, d *Directive, sc *scope) error {
	name := d.Args[0]
	if len(name) < 2 || name[0] != '$' {
		return b.errf(d, "invalid variable name %q", name)
	}
	for i := 1; i < len(name); i++ {
		if !isVarNameByte(name[i]) {
			return b.errf(d, "invalid variable name %q", name)
		}
	}
	v, err := ParseTemplate(d.Args[1])
	if err != nil {
		return b.errf(d, "%s", err)
	}
	sc.loc.Sets = append(sc.loc.Sets, SetVar{Name: name[1:], Value: v})
	return nil
}

func applyReturn(b *builder, d *Directive, sc *scope) error {
	r := &Return{}
	arg := d.Args[0]
	code, err := strconv.Atoi(arg)
	switch {
	case err == nil && code >= 0 && code <= 999:
		r.Code = code
	case len(d.Args) == 1 && (strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") || strings.HasPrefix(arg, "$scheme")):
		r.Code = 302
		if r.Text, err = ParseTemplate(arg); err != nil {
			return b.errf(d, "%s", err)
		}
	default:
		return b.errf(d, "invalid return code %q", arg)
	}
	if len(d.Args) == 2 {
		if r.Text, err = ParseTemplate(d.Args[1]); err != nil {
			return b.errf(d, "%s", err)
		}
	}
	if sc.loc.Return == nil {
		sc.loc.Return = r
		sc.loc.set |= setReturn
	}
	return nil
}

func applyRoot(b *builder, d *Directive, sc *scope) error {
	if err := b.setOnce(d, sc, setRoot); err != nil {
		return err
	}
	p := d.Args[0]
	if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "$") {
		p = filepath.Join(b.cfg.Prefix, p)
	}
	if s := strings.TrimRight(p, "/"); s != "" {
		p = s
	}
	t, err := ParseTemplate(p)
	if err != nil {
		return b.errf(d, "%s", err)
	}
	sc.loc.Root = t
	return nil
}

func applyAccessLog(b *builder, d *Directive, sc *scope) error {
	if sc.loc.set&setAccessLog != 0 {
		b.warn(d, `only the first "access_log" of a context is used; this one is ignored`)
		return nil
	}
	sc.loc.set |= setAccessLog
	if d.Args[0] == "off" {
		if len(d.Args) > 1 {
			return b.errf(d, "invalid number of arguments in %q directive", d.Name)
		}
		sc.loc.AccessLog = nil
		return nil
	}
	al := &AccessLog{Path: d.Args[0], Format: DefaultAccessLogFormat}
	if strings.HasPrefix(al.Path, "syslog:") || strings.Contains(al.Path, "$") {
		return b.errf(d, "access_log path %q is not supported by luaserve; use a plain file", al.Path)
	}
	if al.Path != "/dev/stdout" && al.Path != "/dev/stderr" {
		al.Path = b.prefixed(al.Path)
	}
	if len(d.Args) > 1 {
		if d.Args[1] != DefaultAccessLogFormat {
			return b.errf(d, "unknown log format %q", d.Args[1])
		}
		for _, o := range d.Args[2:] {
			b.warn(d, "access_log parameter %q is ignored", o)
		}
	}
	sc.loc.AccessLog = al
	return nil
}

func applyPackagePath(b *builder, d *Directive, _ *scope) error {
	if err := b.once(d); err != nil {
		return err
	}
	if d.Name == "lua_package_cpath" {
		b.cfg.HTTP.LuaPackageCPath = d.Args[0]
		b.warn(d, "lua_package_cpath is stored but C modules cannot be loaded by luaserve (gopher-lua)")
		return nil
	}
	b.cfg.HTTP.LuaPackagePath = d.Args[0]
	return nil
}

func applySharedDict(b *builder, d *Directive, _ *scope) error {
	name := d.Args[0]
	size, ok := parseSize(d.Args[1])
	if !ok || size < 8<<10 {
		return b.errf(d, "invalid lua shared dict size %q", d.Args[1])
	}
	for _, sd := range b.cfg.HTTP.SharedDicts {
		if sd.Name == name {
			return b.errf(d, "lua_shared_dict %q is already defined as %q", name, name)
		}
	}
	b.cfg.HTTP.SharedDicts = append(b.cfg.HTTP.SharedDicts, SharedDict{Name: name, Size: size})
	return nil
}

// applyLua handles every *_by_lua, *_by_lua_block and *_by_lua_file.
func applyLua(phase string, bit setBits, form string) func(*builder, *Directive, *scope) error {
	return func(b *builder, d *Directive, sc *scope) error {
		var (
			c   *LuaChunk
			err error
		)
		switch form {
		case "block":
			c, err = b.compileInline(d, phase, d.Code)
		case "file":
			c, err = b.compileFile(d, d.Args[0])
		default:
			c, err = b.compileInline(d, phase, d.Args[0])
		}
		if err != nil {
			return err
		}
		h := b.cfg.HTTP
		var dst **LuaChunk
		switch phase {
		case "init_by_lua":
			dst = &h.InitByLua
		case "init_worker_by_lua":
			dst = &h.InitWorkerByLua
		case "rewrite_by_lua":
			dst = &sc.loc.Rewrite
		case "access_by_lua":
			dst = &sc.loc.Access
		case "content_by_lua":
			dst = &sc.loc.Content
		case "log_by_lua":
			dst = &sc.loc.Log
		}
		if *dst != nil {
			return b.errf(d, "%q directive is duplicate", d.Name)
		}
		*dst = c
		sc.loc.set |= bit
		return nil
	}
}
