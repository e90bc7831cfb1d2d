package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"luaserve/luabind"
)

// serveStatic is nginx's static module for a location without a content
// handler: root + URI, index files for directories, never outside root.
func (rs *reqState) serveStatic() {
	r := &rs.lr
	ctx := r.Ctx
	loc := rs.loc
	if !ctx.IsGet() && !ctx.IsHead() {
		rs.finish(fasthttp.StatusMethodNotAllowed)
		return
	}
	if loc.Root == nil {
		rs.finish(fasthttp.StatusNotFound)
		return
	}
	root := string(loc.Root.Append(nil, rs.lookup))
	if !filepath.IsAbs(root) {
		root = filepath.Join(rs.g.cfg.Prefix, root)
	}
	root = filepath.Clean(root)
	full, ok := AppendJoin(nil, root, rs.path)
	if !ok {
		rs.finish(fasthttp.StatusBadRequest)
		return
	}
	name := string(full)
	fi, err := os.Stat(name)
	if err == nil && fi.IsDir() {
		if len(rs.path) == 0 || rs.path[len(rs.path)-1] != '/' {
			// nginx redirects a directory without its slash.
			ctx.Response.Header.Set("Location", string(rs.path)+"/")
			rs.finish(fasthttp.StatusMovedPermanently)
			return
		}
		found := false
		index := loc.Index
		if len(index) == 0 {
			index = []string{"index.html"}
		}
		for _, ix := range index {
			cand := filepath.Join(name, ix)
			if ifi, ierr := os.Stat(cand); ierr == nil && !ifi.IsDir() {
				name, fi, found = cand, ifi, true
				break
			}
		}
		if !found {
			rs.g.engine.errlog.Log(luabind.LogErr, r, "directory index of \""+name+"/\" is forbidden")
			rs.finish(fasthttp.StatusForbidden)
			return
		}
	} else if err != nil {
		if os.IsNotExist(err) {
			rs.g.engine.errlog.Log(luabind.LogErr, r, "open() \""+name+"\" failed (2: No such file or directory)")
			rs.finish(fasthttp.StatusNotFound)
		} else {
			rs.g.engine.errlog.Log(luabind.LogErr, r, "open() \""+name+"\" failed ("+err.Error()+")")
			rs.finish(fasthttp.StatusForbidden)
		}
		return
	}
	ctx.Response.Header.SetContentType(rs.typeOf(filepath.Ext(name), loc))
	ctx.Response.Header.Set("Last-Modified", fi.ModTime().UTC().Format(timeHTTP))
	ctx.Response.Header.Set("Accept-Ranges", "bytes")
	if ims := ctx.Request.Header.Peek("If-Modified-Since"); len(ims) > 0 {
		if t, err := fasthttp.ParseHTTPDate(ims); err == nil && !fi.ModTime().Truncate(1e9).After(t) {
			ctx.Response.SetStatusCode(fasthttp.StatusNotModified)
			ctx.Response.SkipBody = true
			rs.lr.HeadersSent = true
			return
		}
	}
	f, err := os.Open(name)
	if err != nil {
		rs.finish(fasthttp.StatusForbidden)
		return
	}
	ctx.Response.SetBodyStream(f, int(fi.Size()))
	rs.lr.HeadersSent = true
}

const timeHTTP = "Mon, 02 Jan 2006 15:04:05 GMT"

// contentType is the type nginx gives a response to the request's URI.
func (rs *reqState) contentType(loc *Location) string {
	p := rs.path
	ext := ""
	if i := bytes.LastIndexByte(p, '.'); i >= 0 && bytes.IndexByte(p[i:], '/') < 0 {
		ext = string(p[i:])
	}
	return rs.typeOf(ext, loc)
}

// typeOf maps an extension (".jpg") through the types block, or nginx's
// built-in types when there is none, else default_type.
func (rs *reqState) typeOf(ext string, loc *Location) string {
	types := rs.g.cfg.HTTP.Types
	if types == nil {
		types = nginxDefaultTypes // no types block: nginx's built-in three
	}
	if t, ok := types[strings.ToLower(strings.TrimPrefix(ext, "."))]; ok && ext != "" {
		return t
	}
	return loc.DefaultType
}

// nginxDefaultTypes are the types nginx knows without a types block (and
// without mime.types included).
var nginxDefaultTypes = map[string]string{"html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"}

// hasSpecialPage reports whether nginx has a built-in page for status.
func hasSpecialPage(status int) bool {
	_, ok := specialTitles[status]
	return ok
}

// statusLine is nginx's text for a special response's title.
func statusLine(code int) string {
	if t, ok := specialTitles[code]; ok {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code) + " " + fasthttp.StatusMessage(code)
}

// nginx's titles where they differ from Go's status texts.
var specialTitles = map[int]string{
	301: "Moved Permanently", 302: "Found", 303: "See Other", 307: "Temporary Redirect",
	308: "Permanent Redirect", 400: "Bad Request", 401: "Authorization Required",
	402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Not Allowed",
	406: "Not Acceptable", 408: "Request Time-out", 409: "Conflict", 410: "Gone",
	411: "Length Required", 412: "Precondition Failed", 413: "Request Entity Too Large",
	414: "Request-URI Too Large", 415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
	421: "Misdirected Request", 429: "Too Many Requests", 500: "Internal Server Error",
	501: "Not Implemented", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
	504: "Gateway Time-out", 505: "HTTP Version Not Supported", 507: "Insufficient Storage",
}

// writeSpecialResponse writes nginx's built-in page for status (the HTML
// of ngx_http_special_response.c, CRLF line ends included).
func writeSpecialResponse(ctx *fasthttp.RequestCtx, status int) {
	if status < 300 {
		return
	}
	title := statusLine(status)
	ctx.Response.Header.SetContentType("text/html")
	b := make([]byte, 0, 200)
	b = append(b, "<html>\r\n<head><title>"...)
	b = append(b, title...)
	b = append(b, "</title></head>\r\n<body>\r\n<center><h1>"...)
	b = append(b, title...)
	b = append(b, "</h1></center>\r\n<hr><center>luaserve</center>\r\n</body>\r\n</html>\r\n"...)
	ctx.Response.SetBody(b)
}
