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

// With every VM busy, waiters are woken in the order they came.
func TestVMPoolWakesWaitersInArrivalOrder(t *testing.T) {
	p := newVMPool(&luabind.Options{}, 1, 5*time.Second)
	defer p.close()
	a, err := p.get()
	require.NoError(t, err)
	order := make(chan int, 5)
	for i := range 5 {
		go func() {
			vm, err := p.get()
			if !assert.NoError(t, err) {
				order <- -1
				return
			}
			order <- i
			p.put(vm)
		}()
		require.Eventually(t, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.waiters) == i+1
		}, time.Second, time.Millisecond)
	}
	p.put(a)
	var got []int
	for range 5 {
		got = append(got, <-order)
	}
	assert.Equal(t, []int{0, 1, 2, 3, 4}, got)
}

// A VM that a timer callback held when it came back reaches a waiter once
// the callback is done, without a put and long before the wait is over; a
// waiter whose wait is over gives up and leaves the queue.
func TestVMPoolWaiterGetsAVMATimerFreed(t *testing.T) {
	p := newVMPool(&luabind.Options{}, 1, 5*time.Second)
	defer p.close()
	a, err := p.get()
	require.NoError(t, err)
	p.put(a)
	a.Lock() // a timer callback runs in it
	go func() {
		time.Sleep(30 * time.Millisecond)
		a.Unlock()
	}()
	start := time.Now()
	vm, err := p.get()
	require.NoError(t, err)
	assert.Same(t, a, vm)
	assert.Less(t, time.Since(start), time.Second)

	q := newVMPool(&luabind.Options{}, 1, 60*time.Millisecond)
	defer q.close()
	b, err := q.get()
	require.NoError(t, err)
	start = time.Now()
	_, err = q.get()
	assert.ErrorIs(t, err, ErrPoolExhausted)
	assert.Less(t, time.Since(start), time.Second)
	q.mu.Lock()
	assert.Empty(t, q.waiters)
	q.mu.Unlock()
	q.put(b)
	p.put(vm)
}
