package luabind

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"

	"luaserve/memcached"
	"luaserve/memcached/server"
)

// rmcSynopsis is the document's synopsis handler: connect (from the pool),
// set, get, set_keepalive.
const rmcSynopsis = `
local memcached = require "resty.memcached"
local memc, err = memcached:new()
if not memc then ngx.say("failed to instantiate memc: ", err) return end
memc:set_timeout(1000)
local ok, err = memc:connect("127.0.0.1", PORT)
if not ok then ngx.say("failed to connect: ", err) return end
local ok, err = memc:set("dog", 32)
if not ok then ngx.say("failed to set dog: ", err) return end
local res, flags, err = memc:get("dog")
if err then ngx.say("failed to get dog: ", err) return end
if not res then ngx.say("dog not found") return end
ngx.say("dog: ", res)
local ok, err = memc:set_keepalive(10000, 100)
if not ok then ngx.say("cannot set keepalive: ", err) return end
`

func benchmarkRmcSynopsis(b *testing.B, port int) {
	pools := &memcached.Pools{}
	defer pools.Close()
	vm, err := NewVM(&Options{Logger: &testLogger{}, Pools: pools})
	require.NoError(b, err)
	defer vm.Close()
	vm.L.SetGlobal("PORT", lua.LNumber(port))
	proto := compile(b, "content_by_lua(nginx.conf:1)", rmcSynopsis)
	ctx := &fasthttp.RequestCtx{}
	r := &Request{Ctx: ctx, Phase: PhaseContent}
	serve := func() {
		ctx.Response.ResetBody()
		vm.Bind(r)
		if err := vm.Run(proto, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		vm.End()
	}
	serve()
	if got := string(ctx.Response.Body()); got != "dog: 32\n" {
		b.Fatalf("body %q", got)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		serve()
	}
	b.StopTimer()
	if got := string(ctx.Response.Body()); got != "dog: 32\n" {
		b.Fatalf("body %q", got)
	}
}

// BenchmarkRestyMemcachedSynopsis runs the synopsis route at the VM level
// against the embedded server and, when installed, a real memcached.
func BenchmarkRestyMemcachedSynopsis(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
		require.NoError(b, err)
		defer s.Close()
		benchmarkRmcSynopsis(b, s.Addr().(*net.TCPAddr).Port)
	})
	b.Run("memcached", func(b *testing.B) {
		benchmarkRmcSynopsis(b, rmcRealTCP(b))
	})
}
