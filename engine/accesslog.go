package engine

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"luaserve/luabind"
)

// accessLog appends lines in nginx's combined format. Writes are buffered
// and flushed every second and on close, so logging costs no syscall per
// request.
type accessLog struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
	line []byte
}

func openAccessLog(path string) (*accessLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	a := &accessLog{f: f, w: bufio.NewWriterSize(f, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go a.flusher()
	return a, nil
}

func (a *accessLog) flusher() {
	defer close(a.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.mu.Lock()
			a.w.Flush() //nolint:errcheck // retried on the next tick
			a.mu.Unlock()
		case <-a.stop:
			return
		}
	}
}

func (a *accessLog) close() error {
	close(a.stop)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	a.w.Flush() //nolint:errcheck // closing anyway
	return a.f.Close()
}

// log writes one combined-format line:
// $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
func (a *accessLog) log(r *luabind.Request) {
	ctx := r.Ctx
	var scratch [64]byte
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.line[:0]
	addr, _ := r.Var("remote_addr", scratch[:0])
	b = append(b, addr...)
	b = append(b, " - - ["...)
	b = time.Now().AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = append(b, ctx.Method()...)
	b = append(b, ' ')
	b = append(b, ctx.RequestURI()...)
	b = append(b, ' ')
	b = append(b, ctx.Request.Header.Protocol()...)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(ctx.Response.Body())), 10)
	b = append(b, " \""...)
	b = appendLogValue(b, ctx.Request.Header.Referer())
	b = append(b, "\" \""...)
	b = appendLogValue(b, ctx.Request.Header.UserAgent())
	b = append(b, "\"\n"...)
	a.line = b
	a.w.Write(b) //nolint:errcheck // flushed later; errors surface on flush
}

// appendLogValue writes "-" for an empty value and escapes what nginx
// escapes in log variables (quotes, backslashes, control bytes as \xXX).
func appendLogValue(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, '-')
	}
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// accessLogs shares one writer per file among the locations of all
// generations, so a reload neither reopens nor interleaves them.
type accessLogs struct {
	mu    sync.Mutex
	files map[string]*accessLog
}

func (s *accessLogs) get(path string) (*accessLog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.files[path]; ok {
		return a, nil
	}
	a, err := openAccessLog(path)
	if err != nil {
		return nil, err
	}
	if s.files == nil {
		s.files = make(map[string]*accessLog)
	}
	s.files[path] = a
	return a, nil
}

func (s *accessLogs) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, a := range s.files {
		a.close() //nolint:errcheck // shutting down
		delete(s.files, p)
	}
}
