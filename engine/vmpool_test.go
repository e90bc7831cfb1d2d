package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"luaserve/luabind"
)

func TestVMPoolBoundWaitAndDiscard(t *testing.T) {
	p := newVMPool(&luabind.Options{}, 2, 100*time.Millisecond)
	defer p.close()
	a, err := p.get()
	require.NoError(t, err)
	b, err := p.get()
	require.NoError(t, err)
	assert.NotSame(t, a, b)

	start := time.Now()
	_, err = p.get()
	assert.ErrorIs(t, err, ErrPoolExhausted, "the bound holds")
	assert.GreaterOrEqual(t, time.Since(start), 90*time.Millisecond, "after waiting")

	// A put wakes a waiter, which gets that very VM.
	got := make(chan *luabind.VM)
	go func() {
		vm, err := p.get()
		assert.NoError(t, err)
		got <- vm
	}()
	time.Sleep(20 * time.Millisecond)
	p.put(a)
	assert.Same(t, a, <-got)

	// The most recently returned VM comes back first (LIFO).
	p.put(a)
	p.put(b)
	c, err := p.get()
	require.NoError(t, err)
	assert.Same(t, b, c)

	// A broken VM is closed, and its slot lets a new one be made.
	chunk, err := parse.Parse(strings.NewReader("while true do end"), "x")
	require.NoError(t, err)
	proto, err := lua.Compile(chunk, "x")
	require.NoError(t, err)
	c.Bind(&luabind.Request{Ctx: &fasthttp.RequestCtx{}, Phase: luabind.PhaseContent})
	require.ErrorIs(t, c.Run(proto, 10*time.Millisecond), luabind.ErrTimeout)
	c.End()
	require.True(t, c.Broken())
	p.put(c)
	d, err := p.get()
	require.NoError(t, err)
	e, err := p.get()
	require.NoError(t, err)
	assert.NotSame(t, c, d)
	assert.NotSame(t, c, e)
	p.put(d)
	p.put(e)
}
