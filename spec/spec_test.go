// Package spec runs the Lua specs of spec/*_spec.lua under `go test` (and so
// under `make test`), through the same runner as `luaserve test`
// (engine.RunSpecs), once against the embedded memcached and once against a
// real one.
//
// Writing a spec: spec/NAME_spec.lua is busted-style Lua —
//
//	describe("ngx.say", function()
//	  before_each(function() ... end)
//	  it("formats numbers", function()
//	    local res = assert(spec_http.get("/name/say"))
//	    assert.are.equal("1\n", res.body)
//	  end)
//	  pending("later")
//	end)
//
// Available: describe/context, it/test, pending (also inside a test),
// before_each, after_each, setup, teardown, finally; assert(v, msg) and
// luassert chains (assert.are.equal/same, assert.is_true/false/nil,
// assert.truthy/falsy, assert.is_string/number/table/…, assert.matches,
// assert.near, assert.has_error, assert.error_matches, with is_not/are_not/
// has_no to negate and an optional message after the arguments). No spies,
// stubs or mocks.
//
// The file runs inside one request of a real engine (content phase), so the
// ngx API is live, but ngx.exit/exec/redirect in the spec itself end that
// request (the runner reports the file as aborted). To test handlers, put
// locations in spec/NAME_spec.conf (included in the server block — keep
// them under /NAME/ so specs do not clash) and http-level directives such as
// lua_shared_dict in spec/NAME_spec.http.conf, then request them with
// spec_http: get(path [, opts]), post(path, body [, opts]),
// request(method, path [, opts]) with opts {headers=, body=, timeout=} →
// res {status, body, headers (case-insensitive, repeated ones as lists)} or
// nil, err; spec_http.url(path) and spec_http.addr name the server.
// SPEC_MEMCACHED_HOST and SPEC_MEMCACHED_PORT name the memcached under test;
// SPEC_FILE the spec. require finds lua/, spec/ and examples/lua/. Globals a
// spec sets and modules it requires do not outlive its file.
package spec

import (
	"bytes"
	"fmt"
	"luaserve/internal/mctest"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"luaserve/engine"
)

// TestLuaSpecs runs every spec twice: against the embedded memcached and
// against a real one, since differences between the two are bugs.
func TestLuaSpecs(t *testing.T) {
	backends := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"embedded", func(*testing.T) string { return "" }},
		{"memcached", startMemcached},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr := b.addr(t)
			var out bytes.Buffer
			sum, err := engine.RunSpecsSummary(engine.SpecOptions{
				Prefix:    "..",
				Paths:     []string{"spec"},
				Memcached: addr,
				Out:       &out,
			})
			require.NoError(t, err, out.String())
			t.Logf("luaserve test (%s):\n%s", b.name, out.String())
			require.NotZero(t, sum.Passed, "no spec passed: the runner ran nothing")
			if sum.Failed > 0 {
				t.Errorf("%d Lua spec(s) failed against %s memcached:\n%s", sum.Failed, b.name, failures(out.String()))
			}
		})
	}
}

// failures keeps the runner's failure reports (and the error log lines it
// prints with them), dropping the per-file lines of files that passed.
func failures(out string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(line, "ok   ") || strings.HasPrefix(line, "--- PENDING") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// startMemcached starts Debian's memcached on a free loopback port for
// the test and returns its address (skipped when it is not installed).
func startMemcached(t *testing.T) string {
	t.Helper()
	return mctest.Real(t).Addr
}

// waitListening waits up to 5 s for addr to accept a connection.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("memcached exited early: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
