package luabind

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// browserRequest is a request as a browser sends it, parsed by fasthttp as
// the server does, so the raw header block is the one received.
const browserRequest = "GET /x?a=1 HTTP/1.1\r\n" +
	"Host: example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=abc123; theme=dark\r\n" +
	"X-Forwarded-For: 10.0.0.1\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"\r\n"

// parsedRequest returns a RequestCtx holding raw as fasthttp's server would.
func parsedRequest(t testing.TB, raw string) *fasthttp.RequestCtx {
	t.Helper()
	ctx := &fasthttp.RequestCtx{}
	require.NoError(t, ctx.Request.Read(bufio.NewReader(strings.NewReader(raw))))
	return ctx
}

// benchParsed runs code as a content handler of the parsed request raw.
func benchParsed(b *testing.B, raw, code string) {
	benchRequest(b, parsedRequest(b, raw), code)
}

func BenchmarkNgxVarHTTP(b *testing.B) {
	benchParsed(b, browserRequest, `local a, f, h = ngx.var.http_user_agent, ngx.var.http_x_forwarded_for, ngx.var.http_host`)
}

func BenchmarkNgxVarHTTPMissing(b *testing.B) {
	benchParsed(b, browserRequest, `local a = ngx.var.http_authorization`)
}

func BenchmarkNgxReqGetHeaders(b *testing.B) {
	benchParsed(b, browserRequest, `local h = ngx.req.get_headers()`)
}

// runParsed serves the parsed request raw through code in a fresh VM.
func runParsed(t *testing.T, raw, code string, underscores bool) (*fasthttp.RequestCtx, error) {
	t.Helper()
	vm, err := NewVM(&Options{Logger: &testLogger{}})
	require.NoError(t, err)
	t.Cleanup(vm.Close)
	ctx := parsedRequest(t, raw)
	r := &Request{Ctx: ctx, Phase: PhaseContent, Path: ctx.Path(), Start: time.Now(), UnderscoresInHeaders: underscores}
	vm.Bind(r)
	err = vm.Run(compile(t, "content_by_lua(nginx.conf:1)", code), 0)
	vm.End()
	return ctx, err
}

const headersRequest = "GET / HTTP/1.1\r\n" +
	"Host: h\r\n" +
	"User-Agent: ua1\r\n" +
	"user-agent: ua2\r\n" +
	"X_Under: u\r\n" +
	"X.Dot: d\r\n" +
	"Cookie: a=1\r\n" +
	"Cookie: b=2\r\n" +
	"X-Forwarded-For: 1.1.1.1\r\n" +
	"X-Forwarded-For: 2.2.2.2\r\n" +
	"X-Spaced:   a  b   \r\n" +
	"X-Tab:\tt\t\r\n" +
	"X-Empty:\r\n" +
	"\r\n"

// The values below are what OpenResty (lua-nginx-module 0.10.23) answers
// for headersRequest.
func TestRequestHeadersAsNginxKeepsThem(t *testing.T) {
	ctx, err := runParsed(t, headersRequest, `
		local v = ngx.var
		ngx.say(v.http_user_agent, "|", v.http_cookie, "|", v.http_x_forwarded_for, "|", tostring(v.http_x_under),
			"|", tostring(v["http_x.dot"]), "|[", v.http_x_spaced, "]|[", v.http_x_tab, "]|[", v.http_x_empty, "]|",
			tostring(v.content_type))
		local n = 0
		for k, val in pairs(ngx.req.get_headers(0, true)) do n = n + 1 end
		local h, trunc = ngx.req.get_headers(3)
		ngx.say(n, " ", h.host, " ", h["user-agent"][2], " ", h.X_SPACED == nil, " ", trunc)
		ngx.say(type(ngx.req.get_headers()["user-agent"]), " ", ngx.req.get_headers(0, true)["User-Agent"])
	`, false)
	require.NoError(t, err)
	require.Equal(t, "ua1|a=1; b=2|1.1.1.1, 2.2.2.2|nil|nil|[a  b]|[\tt\t]|[]|nil\n"+
		"8 h ua2 true truncated\n"+
		"table ua1\n", string(ctx.Response.Body()))

	ctx, err = runParsed(t, headersRequest, `ngx.say(ngx.var.http_x_under, " ", ngx.req.get_headers().x_under)`, true)
	require.NoError(t, err)
	require.Equal(t, "u u\n", string(ctx.Response.Body()))
}

func TestContentTypeVar(t *testing.T) {
	for raw, want := range map[string]string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n":                                       "nil",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Type:\r\n\r\n":                      `""`,
		"GET / HTTP/1.1\r\nHost: h\r\ncontent-type: a\r\nContent-Type: b\r\n\r\n": `"a"`,
	} {
		ctx, err := runParsed(t, raw, `local ct = ngx.var.content_type ngx.print(ct and '"' .. ct .. '"' or "nil")`, false)
		require.NoError(t, err)
		require.Equal(t, want, string(ctx.Response.Body()), raw)
	}
}

func TestRawHeaderRestoresNginxNULs(t *testing.T) {
	raw := "GET /r HTTP/1.1\r\nHost: h\r\nA:  v  \r\nB: w \r\nX_U: u  \r\nC:   \r\nD: d\r\n\r\n"
	ctx, err := runParsed(t, raw, `ngx.print(ngx.req.raw_header(true), "|", ngx.req.raw_header())`, false)
	require.NoError(t, err)
	// A kept header's first trailing space reads as a line break; the
	// dropped X_U and the all-space C are as sent.
	headers := "Host: h\r\nA:  v\n \r\nB: w\n\r\nX_U: u  \r\nC:   \r\nD: d\r\n\r\n"
	require.Equal(t, headers+"|GET /r HTTP/1.1\r\n"+headers, string(ctx.Response.Body()))

	ctx, err = runParsed(t, "GET /r HTTP/1.0\r\n\r\n", `ngx.print(ngx.req.raw_header(true), "|", ngx.req.raw_header())`, false)
	require.NoError(t, err)
	require.Equal(t, "\r\n\x00|GET /r HTTP/1.0\r\n\r\n", string(ctx.Response.Body()))
}

func TestSetHeaderKeepsNginxOrder(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: h\r\nX-Dup: d1\r\nX-One: 1\r\nx-dup: d2\r\nX-Gone: g\r\n\r\n"
	ctx, err := runParsed(t, raw, `
		ngx.req.set_header("x-dup", { "n1", "n2" })
		ngx.req.set_header("x-one", "new1")
		ngx.req.set_header("X-Gone", "")
		ngx.req.set_header("Foo_Bar", "fb")
		ngx.req.set_header("X-Nl", "a\r\nb")
		ngx.req.clear_header("nothing")
		local out = {}
		for k, v in pairs(ngx.req.get_headers(0, true)) do
			out[#out + 1] = k .. "=" .. (type(v) == "table" and table.concat(v, ",") or v)
		end
		table.sort(out)
		ngx.say(table.concat(out, " "))
		local first = ngx.req.get_headers(3)
		ngx.say(first["x-dup"], " ", first["x-one"], " ", ngx.var.http_foo_bar, " ", ngx.var.http_x_dup)
	`, false)
	require.NoError(t, err)
	require.Equal(t, "Foo_Bar=fb Host=h X-Dup=n1 X-Nl=a%0D%0Ab X-One=new1 x-dup=n2\nn1 new1 fb n1\n", string(ctx.Response.Body()))
	assert.Equal(t, "new1", string(ctx.Request.Header.Peek("X-One")), "fasthttp's header follows")
	assert.Empty(t, ctx.Request.Header.Peek("X-Gone"))
}

// A subrequest sees its main request's headers as Lua left them.
func TestSubrequestSeesMainHeaderChanges(t *testing.T) {
	main := &Request{Ctx: parsedRequest(t, "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n")}
	main.setHeader([]byte("X-B"), []byte("2"), true)
	sub := &Request{Ctx: parsedRequest(t, "GET /sub HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"), Main: main}
	assert.Equal(t, "2", string(sub.headerVar("x_b", nil)))
	sub.setHeader([]byte("X-C"), []byte("3"), true)
	assert.Nil(t, main.headerVar("x_c", nil), "the subrequest's change stays its own")
}

func TestResponseHeaderNamesAsWritten(t *testing.T) {
	require.True(t, plainListOK, "fasthttp's ResponseHeader layout changed: header names fall back to fasthttp's")
	vm, err := NewVM(&Options{})
	require.NoError(t, err)
	defer vm.Close()
	ctx := parsedRequest(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	ctx.Response.Header.DisableNormalizing() // as the engine does
	vm.Bind(&Request{Ctx: ctx, Phase: PhaseContent})
	err = vm.Run(compile(t, "x", `
		ngx.header.content_encoding = "identity"
		ngx.header.set_cookie = { "a=1", "b=2" }
		ngx.header["SET-COOKIE"] = { "c=3", "d=4" }
		ngx.header["Trailer"] = "t"
		ngx.header["x y"] = "a\r\nb"
		ngx.say(ngx.header["Set-Cookie"][2], " ", ngx.header.content_encoding)
	`), 0)
	vm.End()
	require.NoError(t, err)
	head := string(ctx.Response.Header.Header())
	assert.Contains(t, head, "\r\ncontent-encoding: identity\r\n")
	assert.Contains(t, head, "\r\nSET-COOKIE: c=3\r\nSET-COOKIE: d=4\r\n")
	assert.NotContains(t, head, "a=1")
	assert.Contains(t, head, "\r\nTrailer: t\r\n")
	assert.Contains(t, head, "\r\nx%20y: a%0D%0Ab\r\n")
	assert.Equal(t, "d=4 identity\n", string(ctx.Response.Body()))
}

// lua-nginx-module's API errors name the caller's line when Lua code called
// the API, nothing when pcall did.
func TestAPIErrorPositions(t *testing.T) {
	ctx, _, err, _ := runChunk(t, "/", `
		local function f() ngx.redirect("/x", 200) end
		ngx.say(select(2, pcall(f)))
		ngx.say(select(2, pcall(ngx.redirect, "/x", 200)))
		ngx.say(select(2, pcall(function() ngx.req.set_uri(nil) end)))
		ngx.say(select(2, pcall(ngx.req.set_uri_args, true)))
	`, 0)
	require.NoError(t, err)
	const only = "only ngx.HTTP_MOVED_TEMPORARILY, ngx.HTTP_MOVED_PERMANENTLY, ngx.HTTP_PERMANENT_REDIRECT, " +
		"ngx.HTTP_SEE_OTHER, and ngx.HTTP_TEMPORARY_REDIRECT are allowed"
	assert.Equal(t, "content_by_lua(nginx.conf:1):2: "+only+"\n"+only+"\n"+
		"content_by_lua(nginx.conf:1):5: bad argument #1 to 'set_uri' (string expected, got nil)\n"+
		"bad argument #1 to '?' (string, number, or table expected, but got boolean)\n", string(ctx.Response.Body()))
}

// BenchmarkRequestVarHTTP is $http_* without the VM, once per request: a
// header near the start, one that joins every line (X-Forwarded-For), one
// missing, and the three in a row.
func BenchmarkRequestVarHTTP(b *testing.B) {
	for _, c := range []struct {
		name string
		vars []string
	}{
		{"first", []string{"http_user_agent"}},
		{"joined", []string{"http_x_forwarded_for"}},
		{"missing", []string{"http_authorization"}},
		{"three", []string{"http_user_agent", "http_x_forwarded_for", "http_authorization"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := parsedRequest(b, browserRequest)
			r := &Request{Ctx: ctx}
			scratch := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset() // a new request: its headers are split again
				r.Ctx = ctx
				for _, name := range c.vars {
					if _, ok := r.Var(name, scratch); !ok {
						b.Fatal(name)
					}
				}
			}
		})
	}
}
