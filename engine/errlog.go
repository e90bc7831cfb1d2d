package engine

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"luaserve/luabind"
)

// ErrorLog writes nginx-format error log lines:
//
//	2026/11/21 10:00:00 [error] 1234#0: *5 message, client: …, server: …, request: "…", host: "…"
//
// so that tooling and habits built on nginx's error.log carry over. It is
// safe for concurrent use; lines are written whole, one Write each.
type ErrorLog struct {
	mu    sync.Mutex
	w     io.Writer
	c     io.Closer
	level int
	buf   []byte
	pid   string
}

// levelByName maps error_log level names to luabind's (nginx's) levels.
var levelByName = map[string]int{
	"stderr": luabind.LogStderr, "emerg": luabind.LogEmerg, "alert": luabind.LogAlert,
	"crit": luabind.LogCrit, "error": luabind.LogErr, "warn": luabind.LogWarn,
	"notice": luabind.LogNotice, "info": luabind.LogInfo, "debug": luabind.LogDebug,
}

// OpenErrorLog opens path for appending ("stderr" writes to the process's
// standard error), creating its directory as nginx does not but a first run
// of an example wants.
func OpenErrorLog(path, level string) (*ErrorLog, error) {
	lv, ok := levelByName[level]
	if !ok {
		lv = luabind.LogErr
	}
	l := &ErrorLog{level: lv, pid: strconv.Itoa(os.Getpid())}
	if path == "stderr" || path == "" || path == "/dev/stderr" {
		l.w = os.Stderr
		return l, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	l.w, l.c = f, f
	return l, nil
}

// NewErrorLog logs to w at level (an nginx level name).
func NewErrorLog(w io.Writer, level string) *ErrorLog {
	lv, ok := levelByName[level]
	if !ok {
		lv = luabind.LogErr
	}
	return &ErrorLog{w: w, level: lv, pid: strconv.Itoa(os.Getpid())}
}

// Close closes the underlying file, if any.
func (l *ErrorLog) Close() error {
	if l == nil || l.c == nil {
		return nil
	}
	return l.c.Close()
}

// Enabled reports whether lines at level are written.
func (l *ErrorLog) Enabled(level int) bool { return l != nil && level <= l.level }

// Logf writes a line without request context.
func (l *ErrorLog) Logf(level int, format string, args ...any) {
	if !l.Enabled(level) {
		return
	}
	l.write(level, nil, fmt.Sprintf(format, args...))
}

// Log implements luabind.Logger: msg with the request's context suffix.
func (l *ErrorLog) Log(level int, r *luabind.Request, msg string) {
	if !l.Enabled(level) {
		return
	}
	l.write(level, r, msg)
}

func (l *ErrorLog) write(level int, r *luabind.Request, msg string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := now.AppendFormat(l.buf[:0], "2006/01/02 15:04:05")
	b = append(b, " ["...)
	b = append(b, luabind.LevelNames[level]...)
	b = append(b, "] "...)
	b = append(b, l.pid...)
	b = append(b, "#0: "...)
	if r != nil && r.Ctx != nil {
		b = append(b, '*')
		b = strconv.AppendUint(b, r.Ctx.ConnID(), 10)
		b = append(b, ' ')
	}
	b = append(b, msg...)
	if r != nil && r.Ctx != nil {
		b = appendRequestContext(b, r)
	}
	b = append(b, '\n')
	l.buf = b
	l.w.Write(b) //nolint:errcheck // nowhere left to report a failing error log
}

// appendRequestContext is nginx's ", client: …, server: …, request: …,
// host: …" suffix.
func appendRequestContext(b []byte, r *luabind.Request) []byte {
	ctx := r.Ctx
	var scratch [64]byte
	b = append(b, ", client: "...)
	client, _ := r.Var("remote_addr", scratch[:0])
	b = append(b, client...)
	b = append(b, ", server: "...)
	name, _ := r.Var("server_name", scratch[:0])
	b = append(b, name...)
	b = append(b, ", request: \""...)
	b = append(b, ctx.Method()...)
	b = append(b, ' ')
	b = append(b, ctx.RequestURI()...)
	b = append(b, ' ')
	b = append(b, ctx.Request.Header.Protocol()...)
	b = append(b, '"')
	if host := ctx.Request.Header.Host(); len(host) > 0 {
		b = append(b, ", host: \""...)
		b = append(b, host...)
		b = append(b, '"')
	}
	return b
}
