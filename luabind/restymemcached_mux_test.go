package luabind

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"

	"luaserve/internal/mctest"
	"luaserve/memcached"
	"luaserve/memcached/server"
)

// rmcSharedPool is the pool resty.memcached objects of e connect to on
// HOST:PORT.
func rmcSharedPool(e *rmcEnv, port int) *memcached.Pool {
	return e.vm.MemcachedPools().Pool(rmcPoolPrefix+"127.0.0.1:"+strconv.Itoa(port), "", nil)
}

// The same commands answer the same on the shared transport (a fresh
// object) as on a connection of the object's own (one that asked for its
// version first), including those the transport refuses to carry because
// the server would read them otherwise than as one command.
func TestRestyMemcachedSharedAnswersAsOwn(t *testing.T) {
	code := `
		local raw = memcached:new{key_transform = {tostring, tostring}}
		local memc = memcached:new()
		for _, m in ipairs({memc, raw}) do
			m:set_timeout(2000)
			assert(m:connect(HOST, PORT))
			if OWN then m:version() end
		end
		local function show(...)
			local t = {...}
			local n = select('#', ...)
			for i = 1, n do t[i] = type(t[i]) == "string" and string.format("%q", t[i]) or tostring(t[i]) end
			ngx.say(table.concat(t, " ", 1, n))
		end
		local k = "own:" .. tostring(OWN) .. ":"
		show(memc:get(k .. "a"))
		show(memc:gets(k .. "a"))
		show(memc:set(k .. "a", "v", 0, 7))
		show(memc:get(k .. "a"))
		local v, f, cas = memc:gets(k .. "a")
		show(v, f, type(cas))
		show(memc:cas(k .. "a", "w", cas, 0, 3))
		show(memc:cas(k .. "a", "x", cas))
		show(memc:add(k .. "a", "x"))
		show(memc:replace(k .. "none", "x"))
		show(memc:append(k .. "a", "-end"))
		show(memc:prepend(k .. "a", {"s", {"-"}}))
		show(memc:get(k .. "a"))
		show(memc:set(k .. "n", 5))
		show(memc:incr(k .. "n", 10))
		show(memc:decr(k .. "n", 100))
		show(memc:incr(k .. "a", 1))
		show(memc:touch(k .. "a", 10))
		show(memc:touch(k .. "none", 10))
		show(memc:delete(k .. "n"))
		show(memc:delete(k .. "n"))
		show(memc:set(k .. "big", string.rep("x", 1024 * 1024 + 1)))
		show(raw:get(k .. "a"))
		show(raw:get(k .. "noreply"))
		CHECK(memc)
		CHECK(raw)
		-- Refused by the transport: numbers and keys the server would
		-- refuse (a refused storage line has its data block read as the next
		-- command, which desyncs the connection: it comes last) or read
		-- otherwise than as one word.
		show(memc:incr(k .. "n", "x"))
		show(memc:incr(k .. "n", 1.5))
		show(memc:touch(k .. "a", "x"))
		show(memc:get(string.rep("k", 251)))
		show(raw:get(k .. " "))
		show(raw:get(k .. "a b"))
		show(memc:set(k .. "f", "v", 0, "x"))
		CHECK(memc)
		CHECK(raw)
	`
	for _, b := range rmcBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			// Each mode has pools of its own: the refused commands leave
			// the connection they went on out of step (as the library's
			// socket is), and pooled at the end of the request it may take
			// the late reply with it.
			var onShared []bool
			run := func(own bool) (string, string) {
				e := newRmcEnv(t, nil)
				e.vm.L.SetGlobal("OWN", lua.LBool(own))
				e.vm.L.SetGlobal("CHECK", e.vm.L.NewFunction(func(L *lua.LState) int {
					o := L.CheckUserData(1).Value.(*rmc)
					onShared = append(onShared, o.conn == nil && o.lease != nil)
					return 0
				}))
				return e.run(t, b.port, code), e.logged()
			}
			shared, sharedLog := run(false)
			assert.Equal(t, []bool{true, true, false, false}, onShared, "on the shared transport until a refused command")
			own, ownLog := run(true)
			assert.Equal(t, strings.Split(own, "\n"), strings.Split(shared, "\n"))
			assert.Contains(t, shared, `"s-w-end" "3"`)
			assert.Contains(t, shared, `"CLIENT_ERROR cannot increment or decrement non-numeric value"`)
			assert.Equal(t, ownLog, sharedLog)
		})
	}
}

// An object that has taken a connection of its own keeps its lease's
// reuse count, and pools both.
func TestRestyMemcachedReusedTimesAcrossOwnConnection(t *testing.T) {
	port := rmcBackends(t)[0].port
	e := newRmcEnv(t, nil)
	code := `
		local memc = memcached:new()
		assert(memc:connect(HOST, PORT))
		local before = memc:get_reused_times()
		assert(memc:version())
		ngx.say(before, " ", memc:get_reused_times())
		assert(memc:set_keepalive())
	`
	assert.Equal(t, "0 0\n", e.run(t, port, code))
	assert.Equal(t, "1 1\n", e.run(t, port, code))
	assert.Equal(t, 1, rmcSharedPool(e, port).Idle(), "the own connection went back to the pool")
}

// Many VMs at once go through a handful of shared connections, each
// getting its own results.
func TestRestyMemcachedSharedTransportConcurrentVMs(t *testing.T) {
	const vms, requests = 6, 100
	for _, b := range rmcBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			pools := &memcached.Pools{}
			t.Cleanup(func() { pools.Close() })
			warm := newRmcEnv(t, pools)
			warm.run(t, b.port, `local m = memcached:new() assert(m:connect(HOST, PORT)) m:get("warm") m:set_keepalive()`)
			before := mctest.TotalConnections(t, "127.0.0.1:"+strconv.Itoa(b.port))
			errs := make(chan error, vms)
			for w := 0; w < vms; w++ {
				e := newRmcEnv(t, pools)
				go func() {
					errs <- func() error {
						for i := 1; i <= requests; i++ {
							body, err := e.runErr(t, b.port, fmt.Sprintf(`
								local w, i = %d, %d
								local memc = memcached:new()
								memc:set_timeout(5000)
								assert(memc:connect(HOST, PORT))
								local k = "rmcmux:" .. w .. ":" .. i
								local val = string.rep(w, i %% 7 + 1) .. i
								assert(memc:set(k, val, 0, w))
								assert(memc:append(k, "+"))
								local v, f = memc:get(k)
								local n = memc:incr("rmcmux:ctr:" .. w, 1)
								if not n then assert(memc:add("rmcmux:ctr:" .. w, 1)) n = "1" end
								local miss = {memc:get(k .. ":missing")}
								ngx.print(v, " ", f, " ", n, " ", #miss, " ", type(memc:get_reused_times()))
								memc:set_keepalive(10000, 100)`, w, i), 10*time.Second)
							if err != nil {
								return err
							}
							want := fmt.Sprintf("%s%d+ %d %d 0 number", strings.Repeat(strconv.Itoa(w), i%7+1), i, w, i)
							if body != want {
								return fmt.Errorf("vm %d request %d: got %q, want %q", w, i, body, want)
							}
						}
						return nil
					}()
				}()
			}
			for w := 0; w < vms; w++ {
				require.NoError(t, <-errs)
			}
			opened := mctest.TotalConnections(t, "127.0.0.1:"+strconv.Itoa(b.port)) - before - 1
			assert.LessOrEqual(t, opened, memcached.DefaultConnsPerServer)
		})
	}
}

// A timeout on a shared connection fails only the call whose deadline
// passed, with the error and log line of a timeout: a call pipelined beside
// it waits on until its own deadline, as on a socket of its own.
func TestRestyMemcachedSharedTimeoutCostsOnlyItsCall(t *testing.T) {
	silent := rmcListener(t, nil)
	pools := &memcached.Pools{}
	t.Cleanup(func() { pools.Close() })
	long, short := newRmcEnv(t, pools), newRmcEnv(t, pools)
	for _, e := range []*rmcEnv{long, short} {
		e.socket.LogErrors = true
	}
	done := make(chan string, 1)
	start := time.Now()
	go func() {
		done <- long.run(t, silent, `
			local memc = memcached:new()
			memc:set_timeout(1000)
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:get("a"))
			ngx.say(memc:get("a"))
			ngx.say("still running")`)
	}()
	time.Sleep(100 * time.Millisecond) // the long call is waiting
	assert.Equal(t, "nilniltimeout\n", short.run(t, silent, `
		local memc = memcached:new()
		memc:set_timeout(50)
		assert(memc:connect(HOST, PORT))
		ngx.say(memc:get("b"))`))
	assert.Less(t, time.Since(start), 800*time.Millisecond)
	select {
	case body := <-done:
		assert.Equal(t, "nilniltimeout\nnilnilclosed\nstill running\n", body)
		assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "the long call waited for its own deadline")
	case <-time.After(8 * time.Second):
		t.Fatal("the long call is still waiting")
	}
	for _, e := range []*rmcEnv{long, short} {
		assert.Equal(t, logLine{LogErr, "lua tcp socket read timed out"}, e.firstLog(t))
	}
}

// A server that goes away after connect(): a call on the shared connection
// finds it closed, and a call that then has no connection to go on answers
// as a read on a socket the server closed; connecting again is refused.
func TestRestyMemcachedSharedServerGone(t *testing.T) {
	s, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	e := newRmcEnv(t, nil)
	e.socket.LogErrors = true
	e.vm.L.SetGlobal("KILL", e.vm.L.NewFunction(func(*lua.LState) int {
		s.Close()
		return 0
	}))
	body := e.run(t, s.Addr().(*net.TCPAddr).Port, `
		local a, b = memcached:new(), memcached:new()
		assert(a:connect(HOST, PORT))
		assert(a:set("k", "v"))
		assert(b:connect(HOST, PORT))
		KILL()
		local v, f, err = a:get("k")
		ngx.say(v, f, err == "closed" or err == "connection reset by peer" or err == "broken pipe")
		ngx.say(b:get("k"))
		ngx.say(b:get("k"))
		ngx.say(b:connect(HOST, PORT))`)
	assert.Equal(t, "nilniltrue\nnilnilclosed\nnilnilbroken pipe\nnilconnection refused\n", body)
	var logged []string
	for _, l := range e.log.lines {
		logged = append(logged, l.msg)
	}
	assert.Contains(t, logged, "send() failed (32: Broken pipe)")
	assert.Equal(t, "connect() failed (111: Connection refused)", logged[len(logged)-1])
}
