package luabind

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"
)

// BenchmarkCjsonJSONRoute is the Lua side of make bench's /json route:
// decode its 1 KB request body, change two fields, encode.
func BenchmarkCjsonJSONRoute(b *testing.B) {
	body, err := os.ReadFile("../scripts/bench/wrk/body.json")
	require.NoError(b, err)
	for _, bc := range []struct {
		name   string
		public bool
	}{{"direct", false}, {"public API", true}} {
		b.Run(bc.name, func(b *testing.B) {
			L := newCjsonTestState(b)
			c := newCjsonConfig(L)
			c.publicTables = bc.public
			L.SetGlobal("decode", L.NewFunction(func(L *lua.LState) int { return c.luaDecode(L, false) }))
			L.SetGlobal("encode", L.NewFunction(func(L *lua.LState) int { return c.luaEncode(L, false) }))
			require.NoError(b, L.DoString(`function route(body)
				local doc = decode(body)
				doc.count = doc.count + 1
				doc.processed = true
				return encode(doc)
			end`))
			fn, arg := L.GetGlobal("route"), lua.LString(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, arg); err != nil {
					b.Fatal(err)
				}
				L.Pop(1)
			}
		})
	}
}
