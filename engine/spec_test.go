package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runSpecs runs spec files of testdata/ and returns the summary and what
// the runner printed.
func runSpecs(t *testing.T, opts SpecOptions) (SpecSummary, string) {
	t.Helper()
	var out bytes.Buffer
	if opts.Prefix == "" {
		opts.Prefix = "testdata"
	}
	opts.Out = &out
	sum, err := RunSpecsSummary(opts)
	require.NoError(t, err, out.String())
	return sum, out.String()
}

func TestSpecRunnerPassingSpec(t *testing.T) {
	sum, out := runSpecs(t, SpecOptions{Paths: []string{"spec/pass_spec.lua"}})
	assert.Equal(t, 17, sum.Passed, out)
	assert.Equal(t, 0, sum.Failed, out)
	assert.Equal(t, 3, sum.Pending, out)
	assert.Equal(t, []string{
		"--- PENDING: outer is written later (spec/pass_spec.lua:40)",
		"--- PENDING: outer without a body is pending (spec/pass_spec.lua:41)",
		"--- PENDING: outer calls pending inside (spec/pass_spec.lua:42)",
	}, linesWith(out, "PENDING"))
	assert.Regexp(t, `(?m)^ok   spec/pass_spec.lua \(20 tests, 0 failed, 3 pending, [0-9.]+s\)$`, out)
	assert.True(t, strings.HasSuffix(out, "3 pending\n17 passed, 0 failed\n"), out)
}

// The failures the runner must print, each exactly: the test line, then
// the message with the file:line of the failing statement.
func TestSpecRunnerReportsFailuresWithFileAndLine(t *testing.T) {
	sum, out := runSpecs(t, SpecOptions{Paths: []string{"spec/fail_spec.lua"}})
	assert.Equal(t, 2, sum.Passed, out)
	assert.Equal(t, 14, sum.Failed, out)
	assert.Equal(t, 2, sum.Pending, out)
	for _, want := range []string{
		"--- FAIL: failures reports an assertion at its line (spec/fail_spec.lua:3)\nspec/fail_spec.lua:4: expected 1, got 2\n",
		"--- FAIL: failures quotes strings (spec/fail_spec.lua:7)\nspec/fail_spec.lua:8: expected \"1\", got 1\n",
		"--- FAIL: failures reports a custom message (spec/fail_spec.lua:11)\nspec/fail_spec.lua:12: the flag\nexpected true, got false\n",
		"spec/fail_spec.lua:16: expected {a = {1, 2}}, got {a = {1, 3}} (first difference at [\"a\"][2])\n",
		"--- FAIL: failures reports an error with a traceback (spec/fail_spec.lua:19)\n" +
			"spec/fail_spec.lua:22: attempt to index upvalue 't' (a nil value)\n" +
			"stack traceback:\n\tspec/fail_spec.lua:22: in function 'helper'\n\tspec/fail_spec.lua:24: in function <spec/fail_spec.lua:19>\n--- ",
		"spec/fail_spec.lua:28: error object: {code = 7}\n",
		"spec/fail_spec.lua:32: expected an error, got none\n",
		"spec/fail_spec.lua:36: expected a value different from 3\n",
		"--- PENDING: failures counts pending apart (spec/fail_spec.lua:43)\n",
		"--- FAIL: a failing before_each fails the test it guards (spec/fail_spec.lua:51)\nspec/fail_spec.lua:48: setup broke\n",
		"--- FAIL: a failing describe body (describe body) (spec/fail_spec.lua:56)\nspec/fail_spec.lua:59: attempt to index local 'x' (a nil value)\n",
		"--- FAIL: a failing setup fails every test below it (spec/fail_spec.lua:67)\nspec/fail_spec.lua:64: no fixture\n",
		"--- PENDING: a failing setup but keeps pending ones pending (spec/fail_spec.lua:68)\n",
		"--- FAIL: a failing teardown teardown (spec/fail_spec.lua:71)\nspec/fail_spec.lua:73: cleanup broke\n",
		"--- FAIL: misuse names an unknown assertion (spec/fail_spec.lua:80)\nspec/fail_spec.lua:81: luassert: unknown assertion or modifier 'is_bogus'\n",
		"--- FAIL: (file body) (spec/fail_spec.lua)\nspec/fail_spec.lua:85: it expects a function, got \"not a function\"\n",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "spec_prelude.lua", "the prelude's frames are hidden")
	assert.NotContains(t, out, "content_by_lua(", "the runner's chunk is hidden")
	assert.Regexp(t, `(?m)^FAIL spec/fail_spec.lua \(18 tests, 14 failed, 2 pending, [0-9.]+s\)$`, out)
	assert.True(t, strings.HasSuffix(out, "\n2 passed, 14 failed\n"), out)

	var kinds []string
	for _, r := range sum.Results {
		kinds = append(kinds, r.Kind)
		assert.Equal(t, "spec/fail_spec.lua", r.File)
	}
	assert.Equal(t, []string{"error", "fail", "fail", "fail", "fail", "error", "error", "fail", "fail", "pending",
		"error", "error", "error", "pending", "error", "error"}, kinds)
}

func TestSpecRunnerAbortedFiles(t *testing.T) {
	cases := []struct {
		file           string
		timeout        time.Duration
		passed, failed int
		want           []string
	}{
		{file: "spec/syntax_spec.lua", failed: 1, want: []string{
			"--- FAIL: (loading) (spec/syntax_spec.lua)\nspec/syntax_spec.lua:3: syntax error near '='\n"}},
		{file: "spec/exit_spec.lua", passed: 1, failed: 1, want: []string{
			"--- FAIL: exit then exits the request (spec/exit_spec.lua:7)\n" +
				"spec/exit_spec.lua:7: spec file aborted in this test: its request ended with HTTP status 200"}},
		{file: "spec/timeout_spec.lua", timeout: 300 * time.Millisecond, failed: 1, want: []string{
			"--- FAIL: timeout loops (spec/timeout_spec.lua:3)\nspec/timeout_spec.lua:3: spec file aborted in this test: its request ended with HTTP status 500",
			"error log while spec/timeout_spec.lua ran:\n",
			"lua_request_timeout (300ms) exceeded"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			sum, out := runSpecs(t, SpecOptions{Paths: []string{c.file}, Timeout: c.timeout})
			assert.Equal(t, c.passed, sum.Passed, out)
			assert.Equal(t, c.failed, sum.Failed, out)
			for _, w := range c.want {
				assert.Contains(t, out, w)
			}
		})
	}
}

// A directory runs every *_spec.lua below it in order, each file in its own
// request, and the totals add up.
func TestSpecRunnerDirectoryAndSnippets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("spec/b_spec.lua", `it("b", function() assert.are.equal("from b\n", spec_http.get("/b").body) end)`)
	write("spec/b_spec.conf", `location = /b { content_by_lua_block { ngx.say("from b") } }`)
	write("spec/nested/a_spec.lua", `
		local helper = require "helper"
		it("a", function() assert.are.equal(42, helper.answer) end)
		it("a2", function() assert.are.equal(42, ngx.shared.a_dict:get("k") or 42) end)`)
	write("spec/nested/a_spec.http.conf", `lua_shared_dict a_dict 1m;`)
	write("lua/helper.lua", `return { answer = 42 }`)
	write("spec/not_a_spec_file.lua", `error("must not run")`)
	sum, out := runSpecs(t, SpecOptions{Prefix: dir})
	assert.Equal(t, 3, sum.Passed, out)
	assert.Equal(t, 0, sum.Failed, out)
	ib := strings.Index(out, "ok   spec/b_spec.lua")
	ia := strings.Index(out, "ok   spec/nested/a_spec.lua")
	assert.True(t, ib >= 0 && ia > ib, "files run in sorted order:\n%s", out)
	assert.True(t, strings.HasSuffix(out, "\n3 passed, 0 failed\n"), out)

	// One file alone (an absolute path too) brings only its own snippets.
	sum, out = runSpecs(t, SpecOptions{Prefix: dir, Paths: []string{filepath.Join(dir, "spec/b_spec.lua")}, Verbose: true})
	assert.Equal(t, 1, sum.Passed, out)
	assert.Contains(t, out, "--- PASS: b (spec/b_spec.lua:1)\n")
}

func TestSpecRunnerErrors(t *testing.T) {
	_, _, err := RunSpecs(SpecOptions{Prefix: "testdata", Paths: []string{"spec/missing_spec.lua"}})
	assert.ErrorContains(t, err, `spec path "spec/missing_spec.lua"`)
	_, _, err = RunSpecs(SpecOptions{Prefix: t.TempDir()})
	assert.ErrorContains(t, err, "spec path \"spec\"")
	empty := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(empty, "spec"), 0o755))
	_, _, err = RunSpecs(SpecOptions{Prefix: empty})
	assert.ErrorContains(t, err, "no spec files (*_spec.lua) in spec")
	_, _, err = RunSpecs(SpecOptions{Prefix: "testdata", Paths: []string{"spec/pass_spec.lua"}, Memcached: "nonsense"})
	assert.ErrorContains(t, err, `memcached address "nonsense"`)
}

// A snippet that does not load fails the run with its file:line, and a
// given memcached is what the specs are told about.
func TestSpecRunnerSnippetErrorsAndMemcachedAddress(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "spec"), 0o755))
	spec := filepath.Join(dir, "spec/m_spec.lua")
	require.NoError(t, os.WriteFile(spec, []byte(`
		it("sees the memcached it was given", function()
			assert.are.equal("127.0.0.1", SPEC_MEMCACHED_HOST)
			assert.are.equal(1, SPEC_MEMCACHED_PORT)
		end)`), 0o644))
	sum, out := runSpecs(t, SpecOptions{Prefix: dir, Memcached: "127.0.0.1:1"})
	assert.Equal(t, 1, sum.Passed, out)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "spec/m_spec.conf"), []byte("location /m {\n\tno_such_directive on;\n}\n"), 0o644))
	_, _, err := RunSpecs(SpecOptions{Prefix: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no_such_directive")
	assert.Contains(t, err.Error(), "m_spec.conf:2")
}

func TestSpecHelpers(t *testing.T) {
	log := "2026/01/02 03:04:05 [notice] 1#0: started\n" +
		"2026/01/02 03:04:05 [error] 1#0: *1 lua entry thread aborted: boom\n" +
		"stack traceback:\n\tx.lua:1: in main chunk, client: 127.0.0.1\n" +
		"2026/01/02 03:04:05 [warn] 1#0: *1 something\n" +
		"2026/01/02 03:04:05 [crit] 1#0: worse\n"
	assert.Equal(t, "\t2026/01/02 03:04:05 [error] 1#0: *1 lua entry thread aborted: boom\n"+
		"\tstack traceback:\n\t\tx.lua:1: in main chunk, client: 127.0.0.1\n"+
		"\t2026/01/02 03:04:05 [crit] 1#0: worse\n", errorLines([]byte(log)))
	assert.Equal(t, "", errorLines(nil))
	many := strings.Repeat("2026/01/02 03:04:05 [error] 1#0: x\n", 50)
	assert.Equal(t, 41, strings.Count(errorLines([]byte(many)), "\n"), "at most 40 lines and an ellipsis")

	cases := []struct{ in, want string }{
		{`/a/b`, `"/a/b"`},
		{`/a b/"q"\x`, `"/a b/\"q\"\\x"`},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, confQuote(c.in))
	}

	for _, c := range []struct{ src, want string }{
		{"local = 1", "x_spec.lua:1: syntax error near '='"},
		{"\n\nif x then", "x_spec.lua: syntax error at EOF"},
		{"x = 'unfinished", "x_spec.lua: unterminated string at EOF"},
	} {
		_, err := compileChunk(c.src, "x_spec.lua")
		require.Error(t, err, c.src)
		assert.Contains(t, err.Error(), c.want, c.src)
	}
}

func linesWith(s, sub string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}
