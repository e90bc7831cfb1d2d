package luabind

import "bytes"

// The request headers as nginx keeps them (r->headers_in.headers): the
// lines in the order received, names as sent, a line whose name nginx
// finds invalid left out. fasthttp keeps a different view (canonical names,
// Host, Content-Type, Cookie … in fields of their own, the last duplicate
// winning), so what Lua sees is read from the raw block fasthttp keeps as
// received, split into r.hdrs the first time a handler asks: a request
// whose handlers never look at a header costs nothing here. Lua's changes
// (ngx.req.set_header, clear_header) are made to that list.

// reqHeader is one header line: offsets into the raw block, or into
// r.hdrOwn for what Lua set (pointer-free, so splitting costs no write
// barriers). Wire names are checked only when a lookup needs them.
type reqHeader struct {
	name, value span
	nameOwn     bool // name in hdrOwn (set by Lua, valid), else in the raw block
	valueOwn    bool
}

type span struct{ lo, hi int32 }

// headerSet is a header list with the buffers its offsets refer to.
type headerSet struct {
	list        []reqHeader
	raw, own    []byte
	underscores bool
}

func (hs *headerSet) name(h *reqHeader) []byte {
	if h.nameOwn {
		return hs.own[h.name.lo:h.name.hi]
	}
	return hs.raw[h.name.lo:h.name.hi]
}

func (hs *headerSet) value(h *reqHeader) []byte {
	if h.valueOwn {
		return hs.own[h.value.lo:h.value.hi]
	}
	return hs.raw[h.value.lo:h.value.hi]
}

// valid reports whether nginx kept the header (see validHeaderName).
func (hs *headerSet) valid(h *reqHeader) bool {
	return h.nameOwn || validHeaderName(hs.raw[h.name.lo:h.name.hi], hs.underscores)
}

// headers returns r's headers. A subrequest that changed none sees those
// of its main request as Lua left them (nginx copies the parent's headers
// when the subrequest starts).
func (r *Request) headers() headerSet {
	if !r.hdrsSet && r.Main != nil && r.Main.hdrsSet {
		return r.Main.headerSet()
	}
	r.parseHeaders()
	return r.headerSet()
}

func (r *Request) headerSet() headerSet {
	return headerSet{list: r.hdrs, raw: r.hdrRaw, own: r.hdrOwn, underscores: r.UnderscoresInHeaders}
}

// parseHeaders splits the raw block into r.hdrs, once.
func (r *Request) parseHeaders() {
	if r.hdrsParsed {
		return
	}
	r.hdrsParsed = true
	r.hdrs = r.hdrs[:0]
	raw := r.Ctx.Request.Header.RawHeaders()
	r.hdrRaw = raw
	if len(raw) == 0 {
		// A request not read from a connection (a test's, a Go
		// client's) has no raw block: take fasthttp's headers.
		for k, v := range r.Ctx.Request.Header.All() {
			r.hdrs = append(r.hdrs, reqHeader{name: r.own(k), value: r.own(v), nameOwn: true, valueOwn: true})
		}
		return
	}
	off := 0
	for off < len(raw) {
		end := len(raw)
		if i := bytes.IndexByte(raw[off:], '\n'); i >= 0 {
			end = off + i
		}
		line := raw[off:end]
		lo := off
		off = end + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			break // the blank line ending the block
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		vs, ve := colon+1, len(line)
		for vs < ve && line[vs] == ' ' {
			vs++
		}
		for ve > vs && line[ve-1] == ' ' {
			ve--
		}
		r.hdrs = append(r.hdrs, reqHeader{
			name:  span{int32(lo), int32(lo + colon)},
			value: span{int32(lo + vs), int32(lo + ve)},
		})
	}
}

// own copies b into r.hdrOwn.
func (r *Request) own(b []byte) span {
	lo := len(r.hdrOwn)
	r.hdrOwn = append(r.hdrOwn, b...)
	return span{int32(lo), int32(len(r.hdrOwn))}
}

var headerNameClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			t[c] = 1
		case c == '_':
			t[c] = 2
		}
	}
	return t
}()

// validHeaderName is nginx's check with ignore_invalid_headers on (its
// default): letters, digits and '-', '_' only with underscores_in_headers
// on. nginx skips any other header line.
func validHeaderName(name []byte, underscores bool) bool {
	valid := uint8(1)
	if underscores {
		valid = 3
	}
	for _, c := range name {
		if headerNameClass[c]&valid == 0 {
			return false
		}
	}
	return true
}

// headerMatchesVar reports whether header name answers $http_VAR (var
// lower case): nginx compares the name lowercased with '-' read as '_'.
func headerMatchesVar(name []byte, v string) bool {
	if len(name) != len(v) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '-':
			c = '_'
		}
		if c != v[i] {
			return false
		}
	}
	return true
}

// headerVar is $http_NAME (name lower case, after "http_"): the first
// matching header's value, nil when there is none. Cookie and
// X-Forwarded-For, which nginx 1.22 keeps as lists, join every header with
// "; " and ", " into dst.
func (r *Request) headerVar(name string, dst []byte) []byte {
	sep := ""
	switch name {
	case "cookie":
		sep = "; "
	case "x_forwarded_for":
		sep = ", "
	}
	var hs headerSet
	switch {
	case !r.hdrsSet && r.Main != nil && r.Main.hdrsSet:
		hs = r.Main.headerSet()
	case r.hdrsParsed:
		hs = r.headerSet()
	default:
		// Nothing split yet: a lookup reads the raw block itself, which
		// costs less than splitting it for the one or two most handlers
		// make.
		if raw := r.Ctx.Request.Header.RawHeaders(); len(raw) > 0 {
			return r.rawHeaderVar(raw, name, sep, dst)
		}
		hs = r.headers()
	}
	j := varJoin{sep: sep, dst: dst}
	for i := range hs.list {
		h := &hs.list[i]
		if int(h.name.hi-h.name.lo) != len(name) || !headerMatchesVar(hs.name(h), name) || !hs.valid(h) {
			continue
		}
		if j.add(hs.value(h)) {
			break
		}
	}
	return j.value()
}

// varJoin collects the values of $http_*: the first one, or every one
// joined with sep.
type varJoin struct {
	sep        string
	found, dst []byte
	n          int
}

// add takes the next value; true means the lookup has its answer.
func (j *varJoin) add(v []byte) bool {
	if j.n == 1 {
		j.dst = append(j.dst[:0], j.found...)
	}
	if j.n >= 1 {
		j.dst = append(append(j.dst, j.sep...), v...)
	}
	j.found = v
	j.n++
	return j.sep == ""
}

func (j *varJoin) value() []byte {
	if j.n > 1 {
		return j.dst
	}
	return j.found
}

// rawHeaderVar is headerVar on the raw block. It records where lines start
// as it reads them (r.lineStarts, up to r.lineNext), so the next lookup
// goes through them without searching for line ends again, and looks at a
// line's name only when its ':' comes right after as many bytes as name
// has, which most lines' does not.
func (r *Request) rawHeaderVar(raw []byte, name, sep string, dst []byte) []byte {
	j := varJoin{sep: sep, dst: dst}
	for i := 0; ; i++ {
		var start int
		switch {
		case i < len(r.lineStarts):
			start = int(r.lineStarts[i])
		case r.linesDone:
			return j.value()
		default:
			start = int(r.lineNext)
			end := bytes.IndexByte(raw[start:], '\n')
			if end <= 0 || end == 1 && raw[start] == '\r' {
				r.linesDone = true // the blank line ending the block
				continue
			}
			r.lineNext = int32(start + end + 1)
			r.lineStarts = append(r.lineStarts, int32(start))
		}
		colon := start + len(name)
		if colon >= len(raw) || raw[colon] != ':' || !headerMatchesVar(raw[start:colon], name) ||
			!validHeaderName(raw[start:colon], r.UnderscoresInHeaders) {
			continue
		}
		v := raw[colon+1:]
		if e := bytes.IndexByte(v, '\n'); e >= 0 {
			v = v[:e]
		}
		if k := len(v); k > 0 && v[k-1] == '\r' {
			v = v[:k-1]
		}
		for len(v) > 0 && v[0] == ' ' {
			v = v[1:]
		}
		for len(v) > 0 && v[len(v)-1] == ' ' {
			v = v[:len(v)-1]
		}
		if j.add(v) {
			return j.value()
		}
	}
}

// ensureOwnHeaders gives r a header list of its own to change, starting
// from what it sees now, the lines nginx drops left out.
func (r *Request) ensureOwnHeaders() {
	if r.hdrsSet {
		return
	}
	hs := r.headers()
	if r.Main != nil && r.Main.hdrsSet {
		r.hdrRaw = nil
		r.hdrOwn = r.hdrOwn[:0]
		r.hdrs = r.hdrs[:0]
		for i := range hs.list {
			h := &hs.list[i]
			r.hdrs = append(r.hdrs, reqHeader{name: r.own(hs.name(h)), value: r.own(hs.value(h)), nameOwn: true, valueOwn: true})
		}
	} else {
		out := r.hdrs[:0] // hs.list is r.hdrs, fully split
		for i := range hs.list {
			if hs.valid(&hs.list[i]) {
				out = append(out, hs.list[i])
			}
		}
		r.hdrs = out
	}
	r.hdrsParsed, r.hdrsSet = true, true
}

// setHeader is nginx's ngx_http_set_header_helper on r's list: with
// override, the first header named name (any case) takes the value in its
// place and the others go, an empty value removes them all; a name not
// there yet, or no override, appends a header.
func (r *Request) setHeader(name, value []byte, override bool) {
	r.ensureOwnHeaders()
	hs := r.headerSet()
	if override {
		matched := false
		out := r.hdrs[:0]
		for _, h := range r.hdrs {
			if !bytes.EqualFold(hs.name(&h), name) {
				out = append(out, h)
				continue
			}
			if len(value) == 0 || matched {
				continue
			}
			h.value, h.valueOwn = r.own(value), true
			out = append(out, h)
			matched = true
		}
		r.hdrs = out
		if matched || len(value) == 0 {
			return
		}
	}
	r.hdrs = append(r.hdrs, reqHeader{name: r.own(name), value: r.own(value), nameOwn: true, valueOwn: true})
}

// appendRawHeader appends the request's header block as ngx.req.raw_header
// returns it: the bytes received, except that nginx has written NULs into
// its buffer at the end of each header it kept and lua-nginx-module turns
// them back into CR (before a LF) or LF, so a value's first trailing space
// reads as a line break.
func appendRawHeader(dst, raw []byte, underscores bool) []byte {
	start := len(dst)
	dst = append(dst, raw...)
	b := dst[start:]
	for len(b) > 0 {
		end := bytes.IndexByte(b, '\n')
		if end < 0 {
			break
		}
		line := b[:end]
		b = b[end+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validHeaderName(line[:colon], underscores) {
			continue
		}
		// The value ends at the first of the spaces before the line's
		// CR or LF; an all-space value ends at the CR or LF itself.
		e := len(line)
		if e > colon+1 && line[e-1] == '\r' {
			e--
		}
		vs := colon + 1
		for vs < e && line[vs] == ' ' {
			vs++
		}
		for e > vs && line[e-1] == ' ' {
			e--
		}
		if vs == e {
			continue // the NUL replaced the CR or LF, restored as it was
		}
		if e < len(line) && line[e] == ' ' {
			if e+1 < len(line) {
				line[e] = '\n'
			} else {
				line[e] = '\r' // followed by the line's LF
			}
		}
	}
	return dst
}
