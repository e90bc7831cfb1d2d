package engine

import (
	"bytes"
	"context"
	_ "embed" // the busted prelude ships inside the binary
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"luaserve/luabind"
)

//go:embed spec_prelude.lua
var specPrelude string

const (
	// specPreludeName is the prelude's chunk name; the prelude skips its
	// own frames by it when it reports where an assertion failed.
	specPreludeName = "luaserve/spec_prelude.lua"
	// specLocation is the runner's own location in the generated config.
	specLocation = "/__luaserve_spec"
	// DefaultSpecTimeout bounds one spec file (its lua_request_timeout).
	DefaultSpecTimeout = 60 * time.Second
	// DefaultSpecHTTPTimeout bounds one spec_http request unless the spec
	// passes {timeout = seconds}.
	DefaultSpecHTTPTimeout = 10 * time.Second
)

// SpecOptions configure RunSpecs.
type SpecOptions struct {
	// Paths are spec files or directories searched recursively for
	// *_spec.lua (default "spec"); relative paths resolve against Prefix.
	Paths []string
	// Prefix is where lua_package_path (lua/, spec/, examples/lua/) and
	// relative paths resolve, and what ngx.config.prefix() answers
	// (default ".").
	Prefix string
	// Memcached is "host:port" of the memcached the specs run against; ""
	// starts the embedded server on a free loopback port.
	Memcached string
	// Out receives failures, pending tests, one line per file and the final
	// "N passed, M failed" line (nil discards them).
	Out io.Writer
	// ErrorLog, when set, receives the engine's whole error log; either way
	// a failing file's [error] lines are printed after its failures.
	ErrorLog io.Writer
	// Timeout bounds each spec file (default DefaultSpecTimeout). It is the
	// server's lua_request_timeout, so snippet locations inherit it unless
	// they set their own.
	Timeout time.Duration
	// Verbose prints a line for every passing test too.
	Verbose bool
}

// SpecResult is the outcome of one test (or of a file that could not run).
type SpecResult struct {
	File string
	// Name is the test's full name: its describe blocks and its own.
	Name string
	// At is "file:line" where the test is defined.
	At string
	// Kind is "pass", "fail" (an assertion), "error" (anything else
	// raised) or "pending".
	Kind string
	// Msg starts with "file:line: " of the failing line; Traceback is set
	// for errors.
	Msg, Traceback string
}

// SpecSummary counts the results of a run; errors count as failed.
type SpecSummary struct {
	Passed, Failed, Pending int
	Results                 []SpecResult // failures and pending tests, in run order
}

// RunSpecs runs busted-style spec files inside a real engine: it writes a
// config that starts the embedded memcached (unless opts.Memcached names
// one), includes each spec's snippets (x_spec.conf inside the server block,
// x_spec.http.conf inside http), and runs every file as one request, so the
// whole ngx API is live. Files run one after the other, in path order; a
// VM may serve several files, but globals a spec sets and modules it
// requires are dropped after its file. It prints each failure with
// file:line and ends Out with "N passed, M failed". err is set only when the
// specs could not run at all (no spec files, a config that does not load).
//
// The generated config lives in a temporary directory, so an include inside
// a snippet resolves against that directory unless its path is absolute.
func RunSpecs(opts SpecOptions) (passed, failed int, err error) {
	s, err := RunSpecsSummary(opts)
	return s.Passed, s.Failed, err
}

// RunSpecsSummary is RunSpecs returning every failure and pending test too.
func RunSpecsSummary(opts SpecOptions) (SpecSummary, error) {
	var sum SpecSummary
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSpecTimeout
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "."
	}
	absPrefix, err := filepath.Abs(prefix)
	if err != nil {
		return sum, err
	}
	paths := opts.Paths
	if len(paths) == 0 {
		paths = []string{"spec"}
	}
	files, err := findSpecs(absPrefix, paths)
	if err != nil {
		return sum, err
	}
	proto, err := compileChunk(specPrelude, specPreludeName)
	if err != nil {
		return sum, fmt.Errorf("spec prelude: %w", err)
	}
	r := &specRunner{
		opts:    opts,
		prefix:  absPrefix,
		prelude: proto,
		runs:    make(map[string]*specRun),
		log:     &specLog{tee: opts.ErrorLog},
		client: &fasthttp.Client{
			Name:                          "luaserve-spec",
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			MaxIdleConnDuration:           5 * time.Second,
		},
	}
	if r.tmp, err = os.MkdirTemp("", "luaserve-spec-"); err != nil {
		return sum, err
	}
	defer os.RemoveAll(r.tmp) //nolint:errcheck // best effort
	e, err := r.start(files)
	if err != nil {
		return sum, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Shutdown(ctx, false) //nolint:errcheck // the run is over
	}()
	for _, f := range files {
		r.runFile(f, out, &sum)
	}
	if sum.Pending > 0 {
		fmt.Fprintf(out, "%d pending\n", sum.Pending)
	}
	fmt.Fprintf(out, "%d passed, %d failed\n", sum.Passed, sum.Failed)
	return sum, nil
}

// specFile is one spec to run and the config snippets that come with it.
type specFile struct {
	abs, name            string
	serverConf, httpConf string
}

// findSpecs expands paths into spec files, sorted, each once.
func findSpecs(prefix string, paths []string) ([]specFile, error) {
	seen := make(map[string]bool)
	var files []specFile
	add := func(abs string) {
		if seen[abs] {
			return
		}
		seen[abs] = true
		name := abs
		if rel, err := filepath.Rel(prefix, abs); err == nil && !strings.HasPrefix(rel, "..") {
			name = filepath.ToSlash(rel)
		}
		f := specFile{abs: abs, name: name}
		base := strings.TrimSuffix(abs, ".lua")
		if isFile(base + ".conf") {
			f.serverConf = base + ".conf"
		}
		if isFile(base + ".http.conf") {
			f.httpConf = base + ".http.conf"
		}
		files = append(files, f)
	}
	for _, p := range paths {
		abs := p
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(prefix, p)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("spec path %q: %w", p, err)
		}
		if !st.IsDir() {
			add(abs)
			continue
		}
		var found []string
		err = filepath.WalkDir(abs, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), "_spec.lua") {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("spec path %q: %w", p, err)
		}
		sort.Strings(found)
		for _, f := range found {
			add(f)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no spec files (*_spec.lua) in %s", strings.Join(paths, ", "))
	}
	return files, nil
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

func compileChunk(src, name string) (*lua.FunctionProto, error) {
	proto, err := luabind.CompileChunk(strings.NewReader(src), name)
	if cerr := (*lua.CompileError)(nil); err != nil && !errors.As(err, &cerr) {
		return nil, syntaxError(name, err)
	}
	return proto, err
}

// syntaxError rewrites gopher-lua's "x line:3(column:5) near 'y': msg" as
// Lua's "x:3: msg near 'y'", so a broken spec reports file:line like any
// other failure.
func syntaxError(name string, err error) error {
	var perr *parse.Error
	if !errors.As(err, &perr) {
		return err
	}
	if perr.Pos.Line == parse.EOF {
		return fmt.Errorf("%s: %s at EOF", name, perr.Message)
	}
	return fmt.Errorf("%s:%d: %s near '%s'", name, perr.Pos.Line, perr.Message, perr.Token)
}

// specRunner is one RunSpecs call: its engine and the results the spec
// requests report through the luaserve.spec module's Go functions.
type specRunner struct {
	opts    SpecOptions
	prefix  string
	tmp     string
	prelude *lua.FunctionProto
	client  *fasthttp.Client
	log     *specLog

	// addr is the server under test; set before the first request.
	addr      string
	mcHost    string
	mcPort    int
	mu        sync.Mutex
	runs      map[string]*specRun
	nextToken int
}

// specRun collects the reports of one spec file's request.
type specRun struct {
	file    specFile
	results []SpecResult
	done    bool
	// running is the test that started last (name, at).
	running [2]string
}

// start writes the config and starts an engine on it. Ports are picked
// free, then bound by the engine: one taken in the meantime is retried.
func (r *specRunner) start(files []specFile) (*Engine, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		embedded := ""
		if r.opts.Memcached != "" {
			host, port, err := net.SplitHostPort(r.opts.Memcached)
			if err != nil {
				return nil, fmt.Errorf("memcached address %q: %w", r.opts.Memcached, err)
			}
			r.mcHost = host
			if r.mcPort, err = strconv.Atoi(port); err != nil {
				return nil, fmt.Errorf("memcached address %q: bad port", r.opts.Memcached)
			}
		} else {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			r.mcHost, r.mcPort = "127.0.0.1", port
			embedded = net.JoinHostPort(r.mcHost, strconv.Itoa(port))
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf := filepath.Join(r.tmp, "nginx.conf")
		if err := os.WriteFile(conf, []byte(r.config(files, listen, embedded)), 0o644); err != nil {
			return nil, err
		}
		e, err := New(Options{
			Prefix:   r.prefix,
			ConfFile: conf,
			ErrorLog: r.log,
			Preload: map[string]lua.LGFunction{
				"luaserve.spec": r.loader,
				"spec_http":     r.httpLoader,
			},
		})
		if err != nil {
			return nil, err
		}
		if err := e.Start(); err != nil {
			e.Shutdown(context.Background(), false) //nolint:errcheck // never started
			lastErr = err
			continue
		}
		addrs := e.Addrs()
		if len(addrs) != 1 {
			e.Shutdown(context.Background(), false) //nolint:errcheck // unusable
			return nil, fmt.Errorf("spec engine listens on %v, want one address", addrs)
		}
		r.addr = addrs[0]
		return e, nil
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// config is the nginx.conf the specs run under.
func (r *specRunner) config(files []specFile, listen, embedded string) string {
	var b strings.Builder
	q := confQuote
	fmt.Fprintf(&b, "error_log %s info;\npid %s;\n", q(filepath.Join(r.tmp, "error.log")), q(filepath.Join(r.tmp, "luaserve.pid")))
	if embedded != "" {
		fmt.Fprintf(&b, "memcached_embedded %s;\n", embedded)
	}
	b.WriteString("http {\n\taccess_log off;\n")
	var pp []string
	for _, dir := range []string{"lua", "spec", "examples/lua"} {
		d := filepath.Join(r.prefix, dir)
		pp = append(pp, d+"/?.lua", d+"/?/init.lua")
	}
	fmt.Fprintf(&b, "\tlua_package_path %s;\n", q(strings.Join(pp, ";")))
	for _, f := range files {
		if f.httpConf != "" {
			fmt.Fprintf(&b, "\tinclude %s;\n", q(f.httpConf))
		}
	}
	fmt.Fprintf(&b, "\tserver {\n\t\tlisten %s;\n\t\tserver_name localhost;\n\t\tlua_request_timeout %dms;\n", listen, r.opts.Timeout.Milliseconds())
	fmt.Fprintf(&b, "\t\tlocation = %s {\n\t\t\tcontent_by_lua_block { require(\"luaserve.spec\").run(ngx.var.arg_run) }\n\t\t}\n", specLocation)
	for _, f := range files {
		if f.serverConf != "" {
			fmt.Fprintf(&b, "\t\tinclude %s;\n", q(f.serverConf))
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// confQuote quotes s as an nginx.conf string.
func confQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// runFile runs one spec file as one request and prints its failures.
func (r *specRunner) runFile(f specFile, out io.Writer, sum *SpecSummary) {
	r.mu.Lock()
	r.nextToken++
	token := strconv.Itoa(r.nextToken)
	run := &specRun{file: f}
	r.runs[token] = run
	r.mu.Unlock()
	r.log.take() // drop what earlier files logged

	start := time.Now()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	req.SetRequestURI("http://" + r.addr + specLocation + "?run=" + token)
	err := r.client.DoTimeout(req, resp, r.opts.Timeout+5*time.Second)
	status := resp.StatusCode()
	fasthttp.ReleaseRequest(req)
	fasthttp.ReleaseResponse(resp)

	r.mu.Lock()
	delete(r.runs, token)
	results, done, running := run.results, run.done, run.running
	r.mu.Unlock()

	var passed, failed, pending int
	for _, res := range results {
		switch res.Kind {
		case "pass":
			passed++
			if r.opts.Verbose {
				fmt.Fprintf(out, "--- PASS: %s (%s)\n", res.Name, res.At)
			}
			continue
		case "pending":
			pending++
			fmt.Fprintf(out, "--- PENDING: %s (%s)\n", res.Name, res.At)
		default:
			failed++
			fmt.Fprintf(out, "--- FAIL: %s (%s)\n%s\n", res.Name, res.At, res.Msg)
			if res.Traceback != "" {
				fmt.Fprintf(out, "%s\n", res.Traceback)
			}
		}
		sum.Results = append(sum.Results, res)
	}
	if !done {
		// The request ended before the prelude finished: a timeout, an
		// ngx.exit/exec/redirect in the spec itself, or a crash of the
		// runner. Blame the test that was running.
		why := fmt.Sprintf("its request ended with HTTP status %d", status)
		if err != nil {
			why = "its request failed: " + err.Error()
		}
		res := SpecResult{File: f.name, Name: "(file)", At: f.name, Kind: "error"}
		if running[0] == "" {
			res.Msg = fmt.Sprintf("%s: spec file aborted after %d tests: %s (ngx.exit, ngx.exec or ngx.redirect in a spec, or lua_request_timeout)", f.name, len(results), why)
		} else {
			res.Name, res.At = running[0], running[1]
			res.Msg = fmt.Sprintf("%s: spec file aborted in this test: %s (ngx.exit, ngx.exec or ngx.redirect in a spec, or lua_request_timeout)", running[1], why)
		}
		failed++
		fmt.Fprintf(out, "--- FAIL: %s (%s)\n%s\n", res.Name, res.At, res.Msg)
		sum.Results = append(sum.Results, res)
	}
	if failed > 0 {
		if lines := errorLines(r.log.take()); lines != "" {
			fmt.Fprintf(out, "error log while %s ran:\n%s", f.name, lines)
		}
	}
	verdict := "ok  "
	if failed > 0 {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "%s %s (%d tests, %d failed, %d pending, %.2fs)\n", verdict, f.name, passed+failed+pending, failed, pending, time.Since(start).Seconds())
	sum.Passed += passed
	sum.Failed += failed
	sum.Pending += pending
}

// errorLines keeps the entries of an error log at level error or worse
// (with their continuation lines, such as tracebacks), at most 40 lines.
func errorLines(log []byte) string {
	var b strings.Builder
	keep, n := false, 0
	for _, line := range strings.SplitAfter(string(log), "\n") {
		if line == "" {
			continue
		}
		if isLogEntryStart(line) {
			keep = strings.Contains(line, "[error]") || strings.Contains(line, "[crit]") ||
				strings.Contains(line, "[alert]") || strings.Contains(line, "[emerg]")
		}
		if keep {
			if n == 40 {
				b.WriteString("\t...\n")
				break
			}
			b.WriteString("\t" + line)
			n++
		}
	}
	return b.String()
}

// isLogEntryStart reports whether line starts with nginx's "YYYY/MM/DD ".
func isLogEntryStart(line string) bool {
	return len(line) > 11 && line[4] == '/' && line[7] == '/' && line[10] == ' '
}

// specLog is the engine's error log during a run: kept per spec file, and
// copied to SpecOptions.ErrorLog.
type specLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

func (l *specLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 {
		l.buf.Write(p)
	}
	if l.tee != nil {
		l.tee.Write(p) //nolint:errcheck // a failing copy must not fail the engine's log
	}
	return len(p), nil
}

// take returns what was logged since the last take.
func (l *specLog) take() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := bytes.Clone(l.buf.Bytes())
	l.buf.Reset()
	return b
}

func (r *specRunner) lookup(token string) *specRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[token]
}

// loader is the luaserve.spec module: the prelude, given its Go side.
func (r *specRunner) loader(L *lua.LState) int {
	native := L.NewTable()
	native.RawSetString("report", L.NewFunction(r.luaReport))
	native.RawSetString("load", L.NewFunction(r.luaLoad))
	native.RawSetString("http", r.httpModule(L))
	native.RawSetString("memcached_host", lua.LString(r.mcHost))
	native.RawSetString("memcached_port", lua.LNumber(r.mcPort))
	L.Push(L.NewFunctionFromProto(r.prelude))
	L.Push(native)
	L.Call(1, 1)
	return 1
}

// luaLoad: fn, file = load(token), or nil, file, err when the spec does not
// compile. The chunk is named by the spec's path, so messages and
// tracebacks say spec/x_spec.lua:12.
func (r *specRunner) luaLoad(L *lua.LState) int {
	run := r.lookup(L.CheckString(1))
	if run == nil {
		L.RaiseError("luaserve.spec: unknown run %q (runs are started by `luaserve test`)", L.CheckString(1))
	}
	src, err := os.ReadFile(run.file.abs)
	var proto *lua.FunctionProto
	if err == nil {
		proto, err = compileChunk(string(src), run.file.name)
	}
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(run.file.name))
		L.Push(lua.LString(err.Error()))
		return 3
	}
	L.Push(L.NewFunctionFromProto(proto))
	L.Push(lua.LString(run.file.name))
	return 2
}

// luaReport: report(token, kind, name, at, msg, traceback).
func (r *specRunner) luaReport(L *lua.LState) int {
	run := r.lookup(L.CheckString(1))
	if run == nil {
		return 0
	}
	kind := L.CheckString(2)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch kind {
	case "done":
		run.done = true
		return 0
	case "running":
		run.running = [2]string{L.OptString(3, ""), L.OptString(4, "")}
		return 0
	}
	run.running = [2]string{}
	run.results = append(run.results, SpecResult{
		File: run.file.name, Kind: kind, Name: L.OptString(3, ""), At: L.OptString(4, ""),
		Msg: L.OptString(5, ""), Traceback: L.OptString(6, ""),
	})
	return 0
}

// httpLoader is the spec_http module for code outside the spec files
// (helpers under spec/ that require it).
func (r *specRunner) httpLoader(L *lua.LState) int {
	L.Push(r.httpModule(L))
	return 1
}

// httpModule builds spec_http: requests to the server under test.
//
//	res, err = spec_http.get(path [, opts])
//	res, err = spec_http.post(path, body [, opts])
//	res, err = spec_http.request(method, path [, opts])
//
// opts: headers (name → string or list of strings), body, timeout
// (seconds). res: status, body, headers (looked up case-insensitively; a
// header sent more than once is a list). path may also be a full http://
// URL.
func (r *specRunner) httpModule(L *lua.LState) *lua.LTable {
	m := L.NewTable()
	headersMeta := L.NewTable()
	headersMeta.RawSetString("__index", L.NewFunction(headerIndex))
	do := func(L *lua.LState, method, path, body string, hasBody bool, opts *lua.LTable) int {
		return r.httpDo(L, headersMeta, method, path, body, hasBody, opts)
	}
	m.RawSetString("get", L.NewFunction(func(L *lua.LState) int {
		return do(L, "GET", L.CheckString(1), "", false, L.OptTable(2, nil))
	}))
	m.RawSetString("post", L.NewFunction(func(L *lua.LState) int {
		return do(L, "POST", L.CheckString(1), L.OptString(2, ""), true, L.OptTable(3, nil))
	}))
	m.RawSetString("request", L.NewFunction(func(L *lua.LState) int {
		return do(L, strings.ToUpper(L.CheckString(1)), L.CheckString(2), "", false, L.OptTable(3, nil))
	}))
	m.RawSetString("addr", lua.LString(r.addr))
	m.RawSetString("url", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString("http://" + r.addr + L.OptString(1, "/")))
		return 1
	}))
	return m
}

// headerIndex finds a response header whatever the case of its name.
func headerIndex(L *lua.LState) int {
	t := L.CheckTable(1)
	key, ok := L.Get(2).(lua.LString)
	if !ok {
		return 0
	}
	var found lua.LValue = lua.LNil
	t.ForEach(func(k, v lua.LValue) {
		if ks, ok := k.(lua.LString); ok && found == lua.LNil && strings.EqualFold(string(ks), string(key)) {
			found = v
		}
	})
	L.Push(found)
	return 1
}

func (r *specRunner) httpDo(L *lua.LState, headersMeta *lua.LTable, method, path, body string, hasBody bool, opts *lua.LTable) int {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	if strings.HasPrefix(path, "http://") {
		req.SetRequestURI(path)
	} else {
		req.SetRequestURI("http://" + r.addr + path)
	}
	timeout := DefaultSpecHTTPTimeout
	if opts != nil {
		if h, ok := opts.RawGetString("headers").(*lua.LTable); ok {
			h.ForEach(func(k, v lua.LValue) {
				switch v := v.(type) {
				case *lua.LTable:
					for i := 1; i <= v.Len(); i++ {
						req.Header.Add(k.String(), v.RawGetInt(i).String())
					}
				default:
					req.Header.Set(k.String(), v.String())
				}
			})
		}
		if b, ok := opts.RawGetString("body").(lua.LString); ok {
			body, hasBody = string(b), true
		}
		if t, ok := opts.RawGetString("timeout").(lua.LNumber); ok && t > 0 {
			timeout = time.Duration(float64(t) * float64(time.Second))
		}
	}
	if hasBody {
		req.SetBodyString(body)
	}
	deadline := time.Now().Add(timeout)
	// The spec's own request deadline (lua_request_timeout) bounds the call
	// too, so a hung handler cannot outlive the spec.
	if ctx := L.Context(); ctx != nil {
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	if err := r.client.DoDeadline(req, resp, deadline); err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString("spec_http: " + method + " " + path + ": " + err.Error()))
		return 2
	}
	res := L.NewTable()
	res.RawSetString("status", lua.LNumber(resp.StatusCode()))
	res.RawSetString("body", lua.LString(resp.Body()))
	headers := L.NewTable()
	for k, v := range resp.Header.All() {
		name := lua.LString(k)
		switch prev := headers.RawGet(name).(type) {
		case lua.LString:
			list := L.NewTable()
			list.Append(prev)
			list.Append(lua.LString(v))
			headers.RawSet(name, list)
		case *lua.LTable:
			prev.Append(lua.LString(v))
		default:
			headers.RawSet(name, lua.LString(v))
		}
	}
	L.SetMetatable(headers, headersMeta)
	res.RawSetString("headers", headers)
	L.Push(res)
	return 1
}
