package luabind

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"time"
)

var hostname, _ = os.Hostname()

// Var resolves the nginx variable name (without "$") for the request: the
// variables nginx derives from the request, $1…$9 of the matched regex
// location, variables declared with `set`, then the engine's own. scratch is
// reused for values that must be built; the result is valid until the next
// call with the same scratch. ok is false for an unknown variable.
func (r *Request) Var(name string, scratch []byte) (value []byte, ok bool) {
	ctx := r.Ctx
	if len(name) == 1 && name[0] >= '0' && name[0] <= '9' {
		return r.Capture(int(name[0] - '0')), true
	}
	if i, found := r.UserVarIndex[name]; found {
		if i < len(r.UserVars) {
			return r.UserVars[i], true
		}
		return nil, true
	}
	switch {
	case hasPrefix(name, "arg_"):
		v, _ := argValue(ctx.URI().QueryString(), name[4:])
		return v, true
	case hasPrefix(name, "http_"):
		return r.headerVar(name[5:], scratch[:0]), true
	case hasPrefix(name, "sent_http_"):
		return ctx.Response.Header.PeekBytes(headerName(scratch[:0], name[10:])), true
	case hasPrefix(name, "cookie_"):
		return ctx.Request.Header.Cookie(name[7:]), true
	}
	switch name {
	case "uri", "document_uri":
		return r.Path, true
	case "request_uri":
		return ctx.RequestURI(), true
	case "args", "query_string":
		return nilIfEmpty(ctx.URI().QueryString()), true
	case "is_args":
		if len(ctx.URI().QueryString()) > 0 {
			return []byte("?"), true
		}
		return nil, true
	case "request_method":
		if r.Main != nil {
			return r.Main.Ctx.Method(), true // nginx: the main request's
		}
		return ctx.Method(), true
	case "scheme":
		if ctx.IsTLS() {
			return []byte("https"), true
		}
		return []byte("http"), true
	case "https":
		if ctx.IsTLS() {
			return []byte("on"), true
		}
		return nil, true
	case "host":
		return requestHost(scratch[:0], ctx.Host()), true
	case "remote_addr":
		return appendAddrIP(scratch[:0], ctx.RemoteAddr()), true
	case "binary_remote_addr":
		ip := ctx.RemoteIP()
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		return append(scratch[:0], ip...), true
	case "remote_port":
		return appendAddrPort(scratch[:0], ctx.RemoteAddr()), true
	case "server_addr":
		return appendAddrIP(scratch[:0], ctx.LocalAddr()), true
	case "server_port":
		return appendAddrPort(scratch[:0], ctx.LocalAddr()), true
	case "server_protocol":
		return ctx.Request.Header.Protocol(), true
	case "request":
		b := append(scratch[:0], ctx.Method()...)
		b = append(b, ' ')
		b = append(b, ctx.RequestURI()...)
		b = append(b, ' ')
		return append(b, ctx.Request.Header.Protocol()...), true
	case "content_type":
		// nginx's is the first Content-Type header's value: nil without
		// one, "" when it was sent empty.
		return r.headerVar("content_type", scratch[:0]), true
	case "content_length":
		// fasthttp reports 0 for a request that sent no Content-Length;
		// nginx's variable is not found then.
		if n := ctx.Request.Header.ContentLength(); n >= 0 && hasRawHeader(ctx.Request.Header.RawHeaders(), "content-length") {
			return strconv.AppendInt(scratch[:0], int64(n), 10), true
		}
		return nil, true
	case "request_length":
		n := len(ctx.Request.Header.RawHeaders()) + len(ctx.Request.Header.RequestURI()) + 16 + len(ctx.Request.Body())
		return strconv.AppendInt(scratch[:0], int64(n), 10), true
	case "request_body":
		return nilIfEmpty(ctx.Request.Body()), true
	case "status":
		return strconv.AppendInt(scratch[:0], int64(ctx.Response.StatusCode()), 10), true
	case "body_bytes_sent":
		return strconv.AppendInt(scratch[:0], int64(len(ctx.Response.Body())), 10), true
	case "remote_user":
		return nil, true
	case "connection":
		return strconv.AppendUint(scratch[:0], ctx.ConnID(), 10), true
	case "connection_requests":
		return strconv.AppendUint(scratch[:0], ctx.ConnRequestNum(), 10), true
	case "request_time":
		d := time.Since(r.Start)
		return strconv.AppendFloat(scratch[:0], float64(d.Milliseconds())/1000, 'f', 3, 64), true
	case "msec":
		now := time.Now()
		return strconv.AppendFloat(scratch[:0], float64(now.UnixMilli())/1000, 'f', 3, 64), true
	case "time_local":
		return time.Now().AppendFormat(scratch[:0], "02/Jan/2006:15:04:05 -0700"), true
	case "time_iso8601":
		return time.Now().AppendFormat(scratch[:0], "2006-01-02T15:04:05-07:00"), true
	case "pid":
		return strconv.AppendInt(scratch[:0], int64(os.Getpid()), 10), true
	case "hostname":
		return []byte(hostname), true
	case "nginx_version":
		return []byte(NginxVersion), true
	}
	if r.Host != nil {
		return r.Host.Var(r, name)
	}
	return nil, false
}

// SetVar assigns a variable from ngx.var.NAME = value. It reports false for a
// variable nginx would not let Lua change.
func (r *Request) SetVar(name string, value []byte) bool {
	if i, found := r.UserVarIndex[name]; found {
		for len(r.UserVars) <= i {
			r.UserVars = append(r.UserVars, nil)
		}
		if value == nil {
			r.UserVars[i] = nil // ngx.var.x = nil: not found, read as nil
		} else {
			r.UserVars[i] = append(r.UserVars[i][:0:0], value...)
		}
		return true
	}
	switch name {
	case "args", "query_string":
		r.Ctx.URI().SetQueryStringBytes(value)
		return true
	case "limit_rate":
		return true // accepted; fasthttp has no per-request rate limit
	}
	return false
}

func hasPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && s[:len(prefix)] == prefix
}

// headerName turns a variable suffix ("user_agent") into a header name
// ("user-agent"); fasthttp matches header names case-insensitively.
func headerName(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			c = '-'
		}
		dst = append(dst, c)
	}
	return dst
}

// argValue finds name in a raw query string as nginx's $arg_NAME does: the
// first match, name compared case-insensitively, value not unescaped.
func argValue(query []byte, name string) ([]byte, bool) {
	for len(query) > 0 {
		var pair []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			pair, query = query[:i], query[i+1:]
		} else {
			pair, query = query, nil
		}
		k, v := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			k, v = pair[:i], pair[i+1:]
		}
		if len(k) == len(name) && equalFoldASCII(k, name) {
			return v, true // nil for "?d": nginx's $arg_d is not found
		}
	}
	return nil, false
}

func equalFoldASCII(b []byte, s string) bool {
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// requestHost is nginx's $host from the Host header: lowercased, port
// removed.
func requestHost(dst, host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		host = host[:i]
	}
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func appendAddrIP(dst []byte, a net.Addr) []byte {
	switch a := a.(type) {
	case *net.TCPAddr:
		if ip4 := a.IP.To4(); ip4 != nil {
			return appendIP4(dst, ip4)
		}
		return append(dst, a.IP.String()...)
	case *net.UnixAddr:
		return append(dst, "unix:"...)
	}
	return dst
}

func appendIP4(dst []byte, ip net.IP) []byte {
	for i := 0; i < 4; i++ {
		if i > 0 {
			dst = append(dst, '.')
		}
		dst = strconv.AppendUint(dst, uint64(ip[i]), 10)
	}
	return dst
}

func appendAddrPort(dst []byte, a net.Addr) []byte {
	if a, ok := a.(*net.TCPAddr); ok {
		return strconv.AppendInt(dst, int64(a.Port), 10)
	}
	return dst
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// hasRawHeader reports whether the raw header block holds a header named
// name (lower case), whatever its case on the wire.
func hasRawHeader(raw []byte, name string) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) > len(name) && line[len(name)] == ':' && equalFoldASCII(line[:len(name)], name) {
			return true
		}
	}
	return false
}
