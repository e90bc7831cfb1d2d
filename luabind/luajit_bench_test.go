package luabind

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// BenchmarkConcat compares a loop of `..` chains compiled by gopher-lua
// alone (its OP_CONCAT) with the same loop compiled by CompileChunk (a call
// of luajitConcat per chain). Each op runs the loop of 1000 chains; the
// per-chain figures are reported as ns/chain and allocs/chain.
func BenchmarkConcat(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"strings2", `s = a .. b`},
		{"strings4", `s = a .. "/" .. b .. ".json"`},
		{"numbers", `s = "id=" .. i .. ";n=" .. n`},
		{"floats", `s = "x=" .. f .. ";y=" .. i / 8`},
	} {
		src := `local a, b, n, f = "prefix", "name", 42, 0.25
local s
for i = 1, 1000 do
	` + c.body + `
end
return s`
		for _, compiler := range []struct {
			name    string
			compile func(string) (*lua.FunctionProto, error)
		}{
			{"opconcat", func(src string) (*lua.FunctionProto, error) {
				chunk, err := parse.Parse(strings.NewReader(src), "bench")
				if err != nil {
					return nil, err
				}
				return lua.Compile(chunk, "bench")
			}},
			{"luajit", func(src string) (*lua.FunctionProto, error) {
				return CompileChunk(strings.NewReader(src), "bench")
			}},
		} {
			b.Run(c.name+"/"+compiler.name, func(b *testing.B) {
				proto, err := compiler.compile(src)
				require.NoError(b, err)
				vm, err := NewVM(&Options{})
				require.NoError(b, err)
				defer vm.Close()
				fn := vm.L.NewFunctionFromProto(proto)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					vm.L.Push(fn)
					vm.L.Call(0, 1)
					vm.L.Pop(1)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/chain")
			})
		}
	}
}

// BenchmarkPcallError compares a loop of failing pcalls under gopher-lua's
// own pcall and error wording with luabind's (the message rewritten while
// the failing frame is on the stack). Per-call figures: ns/pcall.
func BenchmarkPcallError(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"index", `pcall(function() local t return t.x end)`},
		{"error", `pcall(error, "x")`},
		{"ok", `pcall(type, 1)`},
	} {
		src := `for i = 1, 1000 do ` + c.body + ` end`
		b.Run(c.name+"/gopher-lua", func(b *testing.B) {
			L := lua.NewState()
			defer L.Close()
			chunk, err := parse.Parse(strings.NewReader(src), "bench")
			require.NoError(b, err)
			proto, err := lua.Compile(chunk, "bench")
			require.NoError(b, err)
			fn := L.NewFunctionFromProto(proto)
			b.ReportAllocs()
			for b.Loop() {
				L.Push(fn)
				L.Call(0, 0)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/pcall")
		})
		b.Run(c.name+"/luajit", func(b *testing.B) {
			vm, err := NewVM(&Options{})
			require.NoError(b, err)
			defer vm.Close()
			proto, err := CompileChunk(strings.NewReader(src), "bench")
			require.NoError(b, err)
			fn := vm.L.NewFunctionFromProto(proto)
			b.ReportAllocs()
			for b.Loop() {
				vm.L.Push(fn)
				vm.L.Call(0, 0)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/pcall")
		})
	}
}
