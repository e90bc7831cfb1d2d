-- Passes on purpose: exercises the busted API the runner provides.
local trace = {}

describe("outer", function()
  setup(function() trace[#trace + 1] = "setup" end)
  teardown(function() trace[#trace + 1] = "teardown" end)
  before_each(function() trace[#trace + 1] = "before outer" end)
  after_each(function() trace[#trace + 1] = "after outer" end)

  it("runs hooks around a test", function()
    assert.are.same({ "setup", "before outer" }, trace)
  end)

  describe("inner", function()
    before_each(function() trace[#trace + 1] = "before inner" end)
    after_each(function() trace[#trace + 1] = "after inner" end)

    it("runs outer before_each first and after_each inner first", function()
      assert.are.same({
        "setup", "before outer", "after outer",
        "before outer", "before inner",
      }, trace)
    end)

    it("runs finally after the after_each hooks", function()
      finally(function() trace[#trace + 1] = "finally" end)
      assert.are.equal("before inner", trace[#trace])
    end)
  end)

  it("saw every hook of the inner tests", function()
    assert.are.same({
      "setup", "before outer", "after outer",
      "before outer", "before inner", "after inner", "after outer",
      "before outer", "before inner", "after inner", "after outer", "finally",
      "before outer",
    }, trace)
  end)

  pending("is written later")
  it("without a body is pending")
  it("calls pending inside", function()
    pending("not yet")
    error("never reached")
  end)
end)

describe("assertions", function()
  it("compare values", function()
    assert.are.equal(1, 1)
    assert.equal("a", "a")
    assert.is_not.equal(1, "1")
    assert.are_not.equal(1, 2)
    assert.are.same({ 1, { a = "b" } }, { 1, { a = "b" } })
    assert.are_not.same({ 1 }, { 2 })
    assert.near(1.0, 1.05, 0.1)
  end)

  it("check truth and types", function()
    assert.is_true(true)
    assert.is_false(false)
    assert.is_nil(nil)
    assert.is_not_nil(0)
    assert.truthy(0)
    assert.is_truthy("")
    assert.falsy(nil)
    assert.is_falsy(false)
    assert.is_string("s")
    assert.is_number(1)
    assert.is_table({})
    assert.is_function(print)
    assert.is_not_string(1)
  end)

  it("match patterns", function()
    assert.matches("^he", "hello")
    assert.does_not.match("^x", "hello")
    assert.matches("a.c", "a.c", 1, true)
  end)

  it("check errors", function()
    assert.has_error(function() error("boom") end)
    assert.has_error(function() error("boom") end, "boom")
    assert.has_error(function() error({ code = 1 }) end, { code = 1 })
    assert.has_no_error(function() end)
    assert.has_no.errors(function() end)
    assert.error_matches(function() error("bad thing 42") end, "thing %d+")
    local ok, err = pcall(assert.are.equal, 1, 2)
    assert.is_false(ok)
    assert.matches("expected 1, got 2", err, 1, true)
  end)

  it("is Lua's assert too", function()
    local a, b = assert(1, "msg")
    assert.are.equal(1, a)
    assert.are.equal("msg", b)
    assert.has_error(function() assert(false, "custom") end, "custom")
  end)
end)

describe("the engine", function()
  it("serves the spec's own locations", function()
    local res = assert(spec_http.get("/pass/hello?name=spec", { headers = { ["X-Mode"] = "test" } }))
    assert.are.equal(200, res.status)
    assert.are.equal("hello spec test\n", res.body)
    assert.are.equal("yes", res.headers["x-spec"])
    assert.are.equal("yes", res.headers["X-Spec"])
    assert.are.same({ "a=1", "b=2" }, res.headers["Set-Cookie"])
  end)

  it("posts bodies", function()
    local res = assert(spec_http.post("/pass/echo", "payload"))
    assert.are.equal("POST payload", res.body)
    res = assert(spec_http.request("PUT", "/pass/echo", { body = "x" }))
    assert.are.equal("PUT x", res.body)
  end)

  it("sends repeated headers, reaches full URLs and reports transport errors", function()
    local res = assert(spec_http.request("GET", spec_http.url("/pass/headers"), {
      headers = { ["X-Many"] = { "1", "2" } },
    }))
    assert.are.equal("1,2\n", res.body)
    assert.matches("^127%.0%.0%.1:%d+$", spec_http.addr)
    local bad, err = spec_http.get("http://127.0.0.1:1/", { timeout = 1 })
    assert.is_nil(bad)
    assert.matches("^spec_http: GET http://127.0.0.1:1/: ", err)
  end)

  it("gives up on a slow handler at the request's timeout", function()
    local res, err = spec_http.get("/pass/slow", { timeout = 0.1 })
    assert.is_nil(res)
    assert.matches("timeout", err)
  end)

  it("names the memcached under test", function()
    assert.is_string(SPEC_MEMCACHED_HOST)
    assert.is_number(SPEC_MEMCACHED_PORT)
    assert.truthy(SPEC_MEMCACHED_PORT > 0)
  end)

  it("runs with the ngx API and the http block snippet live", function()
    assert.are.equal("content", ngx.get_phase())
    assert.truthy(ngx.shared.pass_dict)
    assert.are.equal("spec/pass_spec.lua", SPEC_FILE)
  end)

  it("keeps the spec's globals to itself", function()
    leaked_global = true
    assert.is_nil(rawget(_G, "leaked_global"))
  end)
end)

describe("positions", function()
  it("points at the nearest spec line after a tail call", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() return assert.are.equal(1, 2) end)
    assert.is_false(ok)
    assert.are.equal("spec/pass_spec.lua:" .. line .. ": expected 1, got 2", err)
  end)
end)
