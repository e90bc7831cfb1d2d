package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"luaserve/luabind"
)

// Defaults applied when the config does not say otherwise; they follow nginx
// and lua-nginx-module.
const (
	DefaultClientMaxBodySize = 1 << 20
	DefaultKeepaliveTimeout  = 75 * time.Second
	DefaultLuaRequestTimeout = 30 * time.Second
	DefaultDefaultType       = "text/plain"
	DefaultEmbeddedSize      = 64 << 20
	DefaultListen            = ":80"
	DefaultErrorLogLevel     = "error"
	DefaultAccessLogFormat   = "combined"

	// DefaultLuaPackagePath is what ";;" in lua_package_path stands for (and
	// the path when the directive is absent). "$prefix" is the -p directory.
	DefaultLuaPackagePath = "$prefix/?.lua;$prefix/?/init.lua;$prefix/lua/?.lua;$prefix/lua/?/init.lua;" +
		"$prefix/lualib/?.lua;$prefix/lualib/?/init.lua"
	DefaultLuaPackageCPath = ""

	maxIncludeDepth = 32
)

// Config is a loaded nginx.conf: the main context plus the http block.
type Config struct {
	Prefix, File string
	Files        []string // the config file and every included file (hot reload watches them)
	ErrorLog     LogTarget
	PidFile      string
	Daemon       bool // true only when "daemon on" is written; luaserve never forks
	Env          []EnvVar
	Embedded     *EmbeddedMemcached // nil when absent
	HTTP         *HTTP              // nil when there is no http block
	Warnings     []Warning
}

// LogTarget is where error_log writes: a path under the prefix or "stderr".
type LogTarget struct {
	Path  string
	Level string
}

// EnvVar is one "env NAME[=value]" directive.
type EnvVar struct {
	Name, Value string
	HasValue    bool
}

// EmbeddedMemcached is luaserve's "memcached_embedded addr [size]" directive.
type EmbeddedMemcached struct {
	Addr string
	Size int64
	File string
	Line int
}

// HTTP is the http block.
type HTTP struct {
	Servers                         []*Server
	LuaPackagePath, LuaPackageCPath string // resolved: ";;" expanded, $prefix expanded, relative entries under the prefix
	InitByLua, InitWorkerByLua      *LuaChunk
	SharedDicts                     []SharedDict
	HotReload                       bool // default true
	VMPoolSize                      int  // 0 = runtime default
	Socket                          SocketSettings
	Resolver                        []string          // resolver addresses, as written
	Types                           map[string]string // lowercase extension → MIME type, from "types { }"

	loc *Location // http-level settings inherited by servers
}

// SharedDict is one lua_shared_dict.
type SharedDict struct {
	Name string
	Size int64
}

// SocketSettings are the lua_socket_* directives; zero means "runtime default".
type SocketSettings struct {
	ConnectTimeout, SendTimeout, ReadTimeout time.Duration
	PoolSize                                 int
	KeepaliveTimeout                         time.Duration
	LogErrors                                bool // default true
}

// Listen is one listen directive (or the default *:80).
type Listen struct {
	Network       string // "tcp" or "unix"
	Addr          string // "127.0.0.1:8080", ":8080", "[::1]:80" or a socket path
	DefaultServer bool
	ReusePort     bool
	File          string
	Line          int
}

// NameKind says how a server name matches.
type NameKind uint8

const (
	NameExact            NameKind = iota // "example.com"
	NameLeadingWildcard                  // "*.example.com" (Name holds ".example.com")
	NameTrailingWildcard                 // "www.example.*" (Name holds "www.example.")
	NameRegex                            // "~^www\d+\.example\.net$"
)

// ServerName is one parsed server_name argument, lowercased as nginx does.
type ServerName struct {
	Kind   NameKind
	Name   string
	Raw    string
	Regexp *regexp.Regexp
}

// Server is one server block.
type Server struct {
	Listens   []Listen
	Names     []ServerName
	Locations []*Location // top-level locations in file order
	Loc       *Location   // server-level settings; used when no location matches
	Named     map[string]*Location
	File      string
	Line      int

	lv level
}

// Location is a location block, or a server's synthetic server-level location.
type Location struct {
	Modifier  string // "", "=", "^~", "~", "~*", "@"
	Pattern   string
	Regexp    *regexp.Regexp
	Locations []*Location

	Rewrite, Access, Content, Log *LuaChunk
	Return                        *Return
	Sets                          []SetVar

	Root              *Template
	Index             []string
	DefaultType       string
	ClientMaxBodySize int64
	AccessLog         *AccessLog // nil = off
	KeepaliveTimeout  time.Duration
	LuaCodeCache      bool
	LuaRequestTimeout time.Duration
	Socket            SocketSettings
	// UnderscoresInHeaders (http and server level) keeps request headers
	// whose name has a '_', which nginx drops by default.
	UnderscoresInHeaders bool
	File                 string
	Line                 int

	parent *Location
	set    setBits
	re     *matcher
	lv     level
}

// AccessLog is an access_log target.
type AccessLog struct {
	Path   string
	Format string
}

// Return is nginx's "return code [text|url]".
type Return struct {
	Code int
	Text *Template // nil when absent
}

// SetVar is one "set $name value".
type SetVar struct {
	Name  string
	Value *Template
}

// LuaChunk is one *_by_lua* handler.
type LuaChunk struct {
	Name  string // chunk name for errors and tracebacks
	Code  string // source of inline chunks
	Proto *lua.FunctionProto
	Path  *Template // *_by_lua_file: absolute when static, as written when it has variables
	File  string
	Line  int

	prefix string
}

// setBits records which inheritable settings a context wrote itself.
type setBits uint32

const (
	setRoot setBits = 1 << iota
	setIndex
	setDefaultType
	setBodySize
	setAccessLog
	setKeepalive
	setCodeCache
	setReqTimeout
	setRewrite
	setAccess
	setLog
	setConnectTimeout
	setSendTimeout
	setReadTimeout
	setPoolSize
	setSockKeepalive
	setLogErrors
	setContent
	setReturn
	setUnderscores
)

// AppendPath appends the file a *_by_lua_file chunk names for this request:
// the template expanded with lookup, relative results under the prefix. A
// path built from request data may not leave the directory its literal part
// names (the prefix for relative templates); ErrPathEscapes says it tried.
func (c *LuaChunk) AppendPath(dst []byte, lookup func(name string) []byte) ([]byte, error) {
	if c.Path == nil {
		return dst, errors.New("engine: chunk has no file path")
	}
	if s, ok := c.Path.Static(); ok {
		return append(dst, s...), nil
	}
	n := len(dst)
	dst = c.Path.Append(dst, lookup)
	m := len(dst)
	val := dst[n:m]
	lit := c.Path.literalPrefix()
	var base string
	var rel []byte
	switch {
	case strings.HasPrefix(lit, "/"):
		dir := lit[:strings.LastIndexByte(lit, '/')+1]
		base, rel = filepath.Clean(dir), val[len(dir):]
	case len(val) > 0 && val[0] == '/':
		if !bytes.HasPrefix(val, []byte(c.prefix)) || len(val) > len(c.prefix) && c.prefix != "/" && val[len(c.prefix)] != '/' {
			return dst[:n], ErrPathEscapes
		}
		base, rel = c.prefix, val[len(c.prefix):]
	default:
		base, rel = c.prefix, val
	}
	out, ok := AppendJoin(dst, base, rel)
	if !ok {
		return dst[:n], ErrPathEscapes
	}
	// out may be a new array; shift the joined path down over the raw value
	k := copy(out[n:], out[m:])
	return out[:n+k], nil
}

// Load reads prefix/confFile (confFile relative to prefix unless absolute),
// expands includes, validates every directive against the table (contexts,
// arity) and builds the typed config. Every failure is a *ConfigError.
func Load(prefix, confFile string) (*Config, error) {
	absPrefix, err := filepath.Abs(prefix)
	if err != nil {
		return nil, &ConfigError{Msg: err.Error()}
	}
	file := confFile
	if !filepath.IsAbs(file) {
		file = filepath.Join(absPrefix, file)
	}
	file = filepath.Clean(file)
	src, err := readRegular(file)
	if err != nil {
		return nil, &ConfigError{Msg: openError(file, err)}
	}
	return loadSource(absPrefix, file, src)
}

// loadSource is Load after the main file is read; prefix and file are
// absolute and clean.
func loadSource(absPrefix, file string, src []byte) (*Config, error) {
	b := &builder{
		cfg: &Config{
			Prefix:   absPrefix,
			File:     file,
			ErrorLog: LogTarget{Path: filepath.Join(absPrefix, "logs/error.log"), Level: DefaultErrorLogLevel},
			PidFile:  filepath.Join(absPrefix, "logs/nginx.pid"),
		},
		confDir: filepath.Dir(file),
	}
	b.cfg.Files = append(b.cfg.Files, file)
	dirs, err := Parse(file, src)
	if err != nil {
		return nil, err
	}
	if err := b.walk(dirs, &scope{ctx: ctxMain}, 0); err != nil {
		return nil, err
	}
	if err := b.finish(); err != nil {
		return nil, err
	}
	return b.cfg, nil
}

// errNotRegular refuses devices and FIFOs, which could block a load forever.
var errNotRegular = errors.New("not a regular file")

func readRegular(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	return io.ReadAll(f)
}

// openError renders an open failure the way nginx logs it.
func openError(file string, err error) string {
	var errno int
	var msg string
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		errno, msg = 2, "No such file or directory"
	case errors.Is(err, os.ErrPermission):
		errno, msg = 13, "Permission denied"
	default:
		return fmt.Sprintf("open() %q failed (%v)", file, err)
	}
	return fmt.Sprintf("open() %q failed (%d: %s)", file, errno, msg)
}

// ctxMask is a set of nginx contexts.
type ctxMask uint8

const (
	ctxMain ctxMask = 1 << iota
	ctxEvents
	ctxHTTP
	ctxServer
	ctxLocation
	ctxAny = ctxMain | ctxEvents | ctxHTTP | ctxServer | ctxLocation
)

// scope is the context a directive is applied in.
type scope struct {
	ctx ctxMask
	srv *Server
	loc *Location // http-level, server-level or the location itself
}

type builder struct {
	cfg     *Config
	confDir string
	seen    map[string]bool // main/http one-shot directives, for "is duplicate"
}

func (b *builder) errf(d *Directive, format string, a ...any) *ConfigError {
	return &ConfigError{File: d.File, Line: d.Line, Msg: fmt.Sprintf(format, a...)}
}

func (b *builder) warn(d *Directive, format string, a ...any) {
	b.cfg.Warnings = append(b.cfg.Warnings, Warning{File: d.File, Line: d.Line, Msg: fmt.Sprintf(format, a...)})
}

func (b *builder) walk(dirs []*Directive, sc *scope, incDepth int) error {
	for _, d := range dirs {
		if d.Name == "include" {
			if err := b.include(d, sc, incDepth); err != nil {
				return err
			}
			continue
		}
		spec, ok := directiveTable[d.Name]
		if !ok {
			return b.errf(d, "unknown directive %q", d.Name)
		}
		if err := spec.check(b, d, sc.ctx); err != nil {
			return err
		}
		if err := spec.apply(b, d, sc); err != nil {
			return err
		}
	}
	return nil
}

// include splices the files an include names into the current block, as
// nginx does: the path is relative to the main config's directory, globs
// expand in sorted order and may match nothing.
func (b *builder) include(d *Directive, sc *scope, depth int) error {
	if d.HasBlock {
		return b.errf(d, `directive "include" is not terminated by ";"`)
	}
	if len(d.Args) != 1 {
		return b.errf(d, `invalid number of arguments in "include" directive`)
	}
	if depth >= maxIncludeDepth {
		return b.errf(d, "include nesting is deeper than %d (an include cycle?)", maxIncludeDepth)
	}
	pat := d.Args[0]
	if !filepath.IsAbs(pat) {
		pat = filepath.Join(b.confDir, pat)
	}
	var files []string
	if strings.ContainsAny(pat, "*?[") {
		m, err := filepath.Glob(pat)
		if err != nil {
			return b.errf(d, "glob() %q failed (%v)", pat, err)
		}
		slices.Sort(m)
		files = m
	} else {
		files = []string{pat}
	}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.IsDir() {
			continue
		}
		src, err := readRegular(f)
		if err != nil {
			return b.errf(d, "%s", openError(f, err))
		}
		if !slices.Contains(b.cfg.Files, f) {
			b.cfg.Files = append(b.cfg.Files, f)
		}
		dirs, err := Parse(f, src)
		if err != nil {
			return err
		}
		if err := b.walk(dirs, sc, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// newLocation returns a location with nothing set; finish fills inherited
// values.
func newLocation(d *Directive, parent *Location) *Location {
	l := &Location{parent: parent}
	if d != nil {
		l.File, l.Line = d.File, d.Line
	}
	return l
}

// finish applies defaults and inheritance once everything is read, because
// nginx lets a directive follow the blocks that inherit it.
func (b *builder) finish() error {
	h := b.cfg.HTTP
	if h == nil {
		return nil
	}
	if h.LuaPackagePath == "" {
		h.LuaPackagePath = ";;"
	}
	h.LuaPackagePath = resolveLuaPath(h.LuaPackagePath, DefaultLuaPackagePath, b.cfg.Prefix)
	h.LuaPackageCPath = resolveLuaPath(h.LuaPackageCPath, DefaultLuaPackageCPath, b.cfg.Prefix)
	root := defaultLocation(b.cfg.Prefix)
	mergeLocation(h.loc, root)
	for _, s := range h.Servers {
		if len(s.Listens) == 0 {
			s.Listens = []Listen{{Network: "tcp", Addr: DefaultListen, File: s.File, Line: s.Line}}
		}
		if len(s.Names) == 0 {
			s.Names = []ServerName{{Kind: NameExact}}
		}
		mergeLocation(s.Loc, h.loc)
		s.Loc.Content = nil
		for _, l := range s.Locations {
			mergeTree(l, s.Loc)
		}
		s.lv = buildLevel(s.Locations)
	}
	b.checkServerNames()
	return checkDefaultServers(b.cfg)
}

// checkServerNames warns, as nginx does, when two servers on one address
// claim the same name; the router keeps the first.
func (b *builder) checkServerNames() {
	type key struct{ addr, name string }
	seen := map[key]*Server{}
	for _, s := range b.cfg.HTTP.Servers {
		for _, l := range s.Listens {
			for _, n := range s.Names {
				if n.Kind == NameExact && n.Name == "" {
					continue
				}
				k := key{l.Addr, n.Raw}
				if o, dup := seen[k]; dup && o != s {
					b.cfg.Warnings = append(b.cfg.Warnings, Warning{File: s.File, Line: s.Line,
						Msg: fmt.Sprintf("conflicting server name %q on %s, ignored", n.Raw, l.Addr)})
					continue
				}
				seen[k] = s
			}
		}
	}
}

func mergeTree(l, parent *Location) {
	mergeLocation(l, parent)
	for _, c := range l.Locations {
		mergeTree(c, l)
	}
	l.lv = buildLevel(l.Locations)
}

// defaultLocation holds the values nginx uses when nothing is configured.
func defaultLocation(prefix string) *Location {
	root, _ := ParseTemplate(filepath.Join(prefix, "html"))
	return &Location{
		Root:              root,
		Index:             []string{"index.html"},
		DefaultType:       DefaultDefaultType,
		ClientMaxBodySize: DefaultClientMaxBodySize,
		AccessLog:         &AccessLog{Path: filepath.Join(prefix, "logs/access.log"), Format: DefaultAccessLogFormat},
		KeepaliveTimeout:  DefaultKeepaliveTimeout,
		LuaCodeCache:      true,
		LuaRequestTimeout: DefaultLuaRequestTimeout,
		Socket:            SocketSettings{LogErrors: true},
		set:               ^setBits(0),
	}
}

// mergeLocation copies into l every setting l did not write itself, like
// nginx's merge_loc_conf. Content handlers are not inherited
// (lua-nginx-module); rewrite, access and log handlers are.
func mergeLocation(l, p *Location) {
	m := func(bit setBits) bool { return l.set&bit == 0 }
	if m(setRoot) {
		l.Root = p.Root
	}
	if m(setIndex) {
		l.Index = p.Index
	}
	if m(setDefaultType) {
		l.DefaultType = p.DefaultType
	}
	if m(setBodySize) {
		l.ClientMaxBodySize = p.ClientMaxBodySize
	}
	if m(setAccessLog) {
		l.AccessLog = p.AccessLog
	}
	if m(setKeepalive) {
		l.KeepaliveTimeout = p.KeepaliveTimeout
	}
	if m(setCodeCache) {
		l.LuaCodeCache = p.LuaCodeCache
	}
	if m(setReqTimeout) {
		l.LuaRequestTimeout = p.LuaRequestTimeout
	}
	if m(setRewrite) {
		l.Rewrite = p.Rewrite
	}
	if m(setAccess) {
		l.Access = p.Access
	}
	if m(setLog) {
		l.Log = p.Log
	}
	if m(setConnectTimeout) {
		l.Socket.ConnectTimeout = p.Socket.ConnectTimeout
	}
	if m(setSendTimeout) {
		l.Socket.SendTimeout = p.Socket.SendTimeout
	}
	if m(setReadTimeout) {
		l.Socket.ReadTimeout = p.Socket.ReadTimeout
	}
	if m(setPoolSize) {
		l.Socket.PoolSize = p.Socket.PoolSize
	}
	if m(setSockKeepalive) {
		l.Socket.KeepaliveTimeout = p.Socket.KeepaliveTimeout
	}
	if m(setLogErrors) {
		l.Socket.LogErrors = p.Socket.LogErrors
	}
	if m(setUnderscores) {
		l.UnderscoresInHeaders = p.UnderscoresInHeaders
	}
}

// resolveLuaPath expands ";;" to def, "$prefix" to the prefix and makes
// relative entries absolute under the prefix.
func resolveLuaPath(p, def, prefix string) string {
	if p == "" {
		return ""
	}
	if strings.Contains(p, ";;") {
		p = strings.Replace(p, ";;", ";"+def+";", 1)
	}
	p = strings.ReplaceAll(p, "${prefix}", prefix)
	p = strings.ReplaceAll(p, "$prefix", prefix)
	var out []string
	for _, e := range strings.Split(p, ";") {
		if e == "" {
			continue
		}
		if !filepath.IsAbs(e) {
			e = prefix + "/" + strings.TrimPrefix(e, "./")
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return strings.Join(out, ";")
}

func checkDefaultServers(cfg *Config) error {
	seen := map[string]bool{}
	for _, s := range cfg.HTTP.Servers {
		for _, l := range s.Listens {
			if !l.DefaultServer {
				continue
			}
			if seen[l.Addr] {
				return &ConfigError{File: l.File, Line: l.Line, Msg: "a duplicate default server for " + l.Addr}
			}
			seen[l.Addr] = true
		}
	}
	return nil
}

// compileInline compiles an inline chunk; errors mirror lua-nginx-module.
func (b *builder) compileInline(d *Directive, phase, code string) (*LuaChunk, error) {
	name := fmt.Sprintf("%s(%s:%d)", phase, filepath.Base(d.File), d.Line)
	proto, err := compileLua(code, name)
	if err != nil {
		return nil, b.errf(d, "failed to load inlined Lua code: %s", err)
	}
	return &LuaChunk{Name: name, Code: code, Proto: proto, File: d.File, Line: d.Line, prefix: b.cfg.Prefix}, nil
}

// compileFile compiles a *_by_lua_file chunk when its path is static; paths
// with variables are resolved per request by AppendPath.
func (b *builder) compileFile(d *Directive, path string) (*LuaChunk, error) {
	t, err := ParseTemplate(path)
	if err != nil {
		return nil, b.errf(d, "%s", err)
	}
	c := &LuaChunk{File: d.File, Line: d.Line, prefix: b.cfg.Prefix}
	s, static := t.Static()
	if !static {
		c.Path, c.Name = t, path
		if lit := t.literalPrefix(); !strings.HasPrefix(lit, "/") && strings.Contains(lit, "..") {
			return nil, b.errf(d, "Lua file path %q escapes the prefix", path)
		}
		return c, nil
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(b.cfg.Prefix, s)
		if !within(b.cfg.Prefix, s) {
			return nil, b.errf(d, "Lua file path %q escapes the prefix", path)
		}
	}
	s = filepath.Clean(s)
	c.Path = &Template{src: s, segs: []tmplSeg{{lit: s}}}
	c.Name = s
	src, err := readRegular(s)
	if err != nil {
		return nil, b.errf(d, "failed to load external Lua file %q: cannot open %s", s, s)
	}
	c.Code = string(src)
	if c.Proto, err = compileLua(c.Code, s); err != nil {
		return nil, b.errf(d, "failed to load external Lua file %q: %s", s, err)
	}
	return c, nil
}

func within(base, p string) bool {
	return p == base || strings.HasPrefix(p, base+"/") || base == "/"
}

// compileLua compiles source into a proto shared by every VM. Errors read
// like Lua's own: "name:line: message near 'token'".
func compileLua(code, name string) (*lua.FunctionProto, error) {
	proto, err := luabind.CompileChunk(strings.NewReader(code), name)
	if cerr := (*lua.CompileError)(nil); err != nil && !errors.As(err, &cerr) {
		var pe *parse.Error
		if errors.As(err, &pe) {
			if pe.Pos.Line == parse.EOF {
				return nil, fmt.Errorf("%s:%d: %s near '<eof>'", name, strings.Count(code, "\n")+1, pe.Message)
			}
			return nil, fmt.Errorf("%s:%d: %s near '%s'", name, pe.Pos.Line, pe.Message, pe.Token)
		}
		return nil, fmt.Errorf("%s: %s", name, strings.TrimSpace(err.Error()))
	}
	if err != nil {
		return nil, fmt.Errorf("%s", strings.TrimSpace(err.Error()))
	}
	return proto, nil
}

// parseSize parses nginx sizes: "512", "1k", "10m", "1g" (either case).
func parseSize(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	mul := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mul = 1 << 10
	case 'm', 'M':
		mul = 1 << 20
	case 'g', 'G':
		mul = 1 << 30
	}
	if mul != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mul {
		return 0, false
	}
	return n * mul, true
}

// parseTime parses nginx times: "30" (seconds), "500ms", "30s", "1m", "1h",
// "1d", "1w", "1M", "1y" and sums like "1h 30m" or "1h30m".
func parseTime(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var total time.Duration
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			break
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j-i > 9 {
			return 0, false
		}
		n, _ := strconv.ParseInt(s[i:j], 10, 64)
		unit := time.Second
		switch {
		case j == len(s) || s[j] == ' ':
		case strings.HasPrefix(s[j:], "ms"):
			unit, j = time.Millisecond, j+1
		case s[j] == 's':
			unit = time.Second
		case s[j] == 'm':
			unit = time.Minute
		case s[j] == 'h':
			unit = time.Hour
		case s[j] == 'd':
			unit = 24 * time.Hour
		case s[j] == 'w':
			unit = 7 * 24 * time.Hour
		case s[j] == 'M':
			unit = 30 * 24 * time.Hour
		case s[j] == 'y':
			unit = 365 * 24 * time.Hour
		default:
			return 0, false
		}
		if j < len(s) && s[j] != ' ' {
			j++
		}
		total += time.Duration(n) * unit
		i = j
	}
	return total, true
}
