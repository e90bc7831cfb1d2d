package luabind

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"luaserve/memcached"
	"luaserve/memcached/server"
)

// benchBmem runs code as one request per iteration on one VM.
func benchBmem(b *testing.B, backend bmemBackend, code string) {
	v := newBmemVM(b, nil)
	code = "local HOST, PORT = '" + backend.host + "', " + itoa(backend.port) + "\n" + code
	proto := compile(b, "bench", code)
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.SetRequestURI("/test_b1?key=a&value=7")
	r := &Request{Ctx: ctx, Phase: PhaseContent}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.ResetBody()
		r.Reset()
		r.Ctx, r.Phase = ctx, PhaseContent
		v.vm.Bind(r)
		if err := v.vm.Run(proto, time.Second); err != nil {
			b.Fatal(err)
		}
		v.vm.End()
	}
	require.Contains(b, string(ctx.Response.Body()), `"value":"7"`)
}

func itoa(n int) string { return string(AppendNumber(nil, float64(n))) }

// The seed route: set + get + cjson.encode per request, the module and its
// bucket loaded once per VM.
const benchSeedRoute = `
local app = package.loaded.bench_app
if not app then
	local bm = require "resty.bmemcached"
	app = { bucket = bm.cluster({ host = HOST, port = PORT }):bucket(), cjson = require "cjson" }
	package.loaded.bench_app = app
end
local ses = app.bucket:session()
local key, value = ngx.var.arg_key, ngx.var.arg_value
local r = ses:set(key, value)
r = ses:get(key)
ses:setkeepalive()
ngx.say(app.cjson.encode(r))
`

func BenchmarkBmemSeedRoute(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		benchBmem(b, embeddedMemcached(b, server.Config{}), benchSeedRoute)
	})
	b.Run("memcached", func(b *testing.B) {
		benchBmem(b, realMemcached(b), benchSeedRoute)
	})
}

// The two result tables of the seed route: set's, then get's with a value.
func BenchmarkBmemResult(b *testing.B) {
	v := newBmemVM(b, nil)
	m := &bmem{vm: v.vm}
	L := v.vm.L
	set := memcached.Response{Header: memcached.Header{Opcode: memcached.OpSet, CAS: 0x1234}}
	get := memcached.Response{Header: memcached.Header{Opcode: memcached.OpGet, CAS: 0x1234}, Value: []byte("7")}
	miss := memcached.Response{Header: memcached.Header{Opcode: memcached.OpGet, Status: memcached.StatusKeyNotFound}, Value: []byte("Not found")}
	b.ReportAllocs()
	for b.Loop() {
		m.result(L, &set)
		m.result(L, &get)
		m.result(L, &miss)
	}
}
