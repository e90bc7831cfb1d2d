-- The core ngx API, as lua-nginx-module 0.10 defines it. The locations
-- these specs request are in ngx_core_spec.conf; the pure functions run
-- right here, inside the spec's own request.
local cjson = require "cjson"

local function get(path, opts)
  local res, err = spec_http.get(path, opts)
  assert.is_nil(err)
  return res
end

describe("ngx.say and ngx.print", function()
  it("format values as OpenResty does", function()
    local res = get("/core/say")
    assert.are.equal(200, res.status)
    assert.are.equal("a12.50.33333333333333truefalsenilnullxy3\n"
      .. "1e+15 -0 100 1e+100 9.007199254741e+15\n"
      .. "inf -inf 0.1 12345678901234 2147483648\n", res.body)
  end)

  it("reject hash tables with a 500", function()
    assert.are.equal(500, get("/core/say-hash").status)
  end)
end)

describe("ngx.var", function()
  it("exposes the request's variables", function()
    local res = get("/core/var?name=bob&x=1", { headers = { ["X-Test"] = "t1" } })
    assert.are.equal(200, res.status)
    assert.are.equal(
      "/core/var|name=bob&x=1|bob|nil|GET\n"
        .. "/core/var?name=bob&x=1|t1|luaserve-spec|hi bob\n"
        .. "127.0.0.1|localhost|http|127.0.0.1\n"
        .. "changed\n",
      res.body)
  end)

  it("reads cookies, the body's type and length, and the query string", function()
    local res = spec_http.post("/core/more-var?q=1", "abc", {
      headers = { Cookie = "a=1; b=two", ["Content-Type"] = "text/plain" },
    })
    assert.are.equal("two|nil|text/plain|3|q=1\n", res.body)
  end)

  it("follows ngx.req.set_uri_args", function()
    assert.are.equal("a=x%20y|x%20y\n", get("/core/set-args?old=1").body)
  end)

  it("numbers the captures of a regex location", function()
    assert.are.equal("abc|42|nil\n", get("/core/cap/abc/42").body)
  end)
end)

describe("ngx.header and ngx.status", function()
  it("set the status and headers, multi-value and dashed", function()
    local res = get("/core/header")
    assert.are.equal(201, res.status)
    assert.are.equal("201 text/x-test ab 5\n", res.body)
    assert.are.equal("text/x-test", res.headers["Content-Type"])
    assert.are.same({ "a", "b" }, res.headers["X-Multi"])
    assert.are.equal("5", res.headers["X-Under-Score"])
  end)
end)

describe("ngx.exit, ngx.redirect and ngx.exec", function()
  it("answers ngx.exit(404) with nginx's error page", function()
    local res = get("/core/exit404")
    assert.are.equal(404, res.status)
    assert.matches("<title>404 Not Found</title>", res.body, 1, true)
  end)

  it("keeps the status once output started", function()
    local res = get("/core/exit-after-say")
    assert.are.equal(200, res.status)
    assert.are.equal("partial\n", res.body)
  end)

  it("ends the handler even inside pcall", function()
    assert.are.equal("before\n", get("/core/exit-in-pcall").body)
  end)

  it("drops output after ngx.eof", function()
    assert.are.equal("sent\n", get("/core/eof").body)
  end)

  it("redirects", function()
    local res = get("/core/redirect")
    assert.are.equal(302, res.status)
    assert.matches("/core/say$", res.headers["Location"])
  end)

  it("runs another location with ngx.exec", function()
    assert.are.equal("from=exec\n", get("/core/exec").body)
  end)

  it("turns a Lua error into a 500", function()
    local res = get("/core/error")
    assert.are.equal(500, res.status)
    assert.matches("500 Internal Server Error", res.body, 1, true)
  end)
end)

describe("ngx.ctx", function()
  it("is shared by the phases of one request", function()
    assert.are.equal("rewrite,access,content\n", get("/core/ctx").body)
  end)
end)

describe("ngx.req", function()
  it("decodes query arguments, repeated and valueless", function()
    assert.are.equal("a=1+3\nb=2\nflag=true\n", get("/core/args?b=2&a=1&a=3&flag").body)
  end)

  it("reads the method, headers and body", function()
    local res = spec_http.post("/core/req", "a=1&b=x%20y", {
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Test"] = "t" },
    })
    assert.are.equal(200, res.status)
    assert.are.equal("POST|1.1|t|t|false\na=1&b=x%20y\n1|x y\n", res.body)
  end)

  it("returns the raw request header", function()
    local body = get("/core/raw?x=1", { headers = { ["X-Raw"] = "r" } }).body
    assert.matches("^GET /core/raw%?x=1 HTTP/1%.1\r\n", body)
    assert.matches("\r\nX%-Raw: r\r\n", body)
    assert.matches("\r\n\r\n$", body)
  end)

  it("sets and clears request headers", function()
    assert.are.equal("yes|nil\n", get("/core/set-header", { headers = { ["X-Remove"] = "r" } }).body)
  end)
end)

describe("ngx.shared", function()
  it("keeps counters across requests", function()
    local first = tonumber(get("/core/shared").body)
    local second = tonumber(get("/core/shared").body)
    assert.is_number(first)
    assert.are.equal(first + 1, second)
    assert.are.equal(second + 1, ngx.shared.ngx_core_spec:incr("hits", 1))
  end)

  it("supports the dict API in the spec's request too", function()
    local d = ngx.shared.ngx_core_spec
    assert.is_true(d:set("k", "v"))
    local ok, err = d:add("k", "other")
    assert.is_false(ok)
    assert.are.equal("exists", err)
    d:delete("k")
    assert.is_nil(d:get("k"))
    assert.is_nil(ngx.shared.no_such_dict)
  end)

  it("returns a value stored without flags, and the flags when set", function()
    local d = ngx.shared.ngx_core_spec
    d:set("plain", "v")
    local v, flags = d:get("plain")
    assert.are.equal("v", v)
    assert.is_nil(flags)
    d:set("flagged", 7, 0, 3)
    v, flags = d:get("flagged")
    assert.are.equal(7, v)
    assert.are.equal(3, flags)
  end)
end)

describe("encoding", function()
  it("escapes URIs with nginx's table", function()
    assert.are.equal("a%20b%2Fc%3Fd%3D%C3%A9", ngx.escape_uri("a b/c?d=\195\169"))
    assert.are.equal("-_.~", ngx.escape_uri("-_.~"))
    -- lua-nginx-module's unescape turns "+" into a space, as forms do.
    assert.are.equal("a b c", ngx.unescape_uri("a%20b+c"))
    assert.are.equal("%zz", ngx.unescape_uri("%zz"))
  end)

  it("encodes and decodes arguments", function()
    assert.are.equal("b=x&b=y", ngx.encode_args({ b = { "x", "y" } }))
    assert.are.equal("c", ngx.encode_args({ c = true }))
    assert.are.equal("a=x%20y", ngx.encode_args({ a = "x y" }))
    assert.are.same({ a = "1", b = { "2", "3" }, c = true }, ngx.decode_args("a=1&b=2&b=3&c"))
  end)

  it("encodes base64 and hashes", function()
    assert.are.equal("aGVsbG8=", ngx.encode_base64("hello"))
    assert.are.equal("hello", ngx.decode_base64("aGVsbG8="))
    assert.is_nil(ngx.decode_base64("@@"))
    assert.are.equal("5d41402abc4b2a76b9719d911017c592", ngx.md5("hello"))
    assert.are.equal(16, #ngx.md5_bin("hello"))
    assert.are.equal("qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", ngx.encode_base64(ngx.sha1_bin("abc")))
    assert.are.equal("3nybhbi3iqa8ino29wqQcBydtNk=",
      ngx.encode_base64(ngx.hmac_sha1("key", "The quick brown fox jumps over the lazy dog")))
    assert.are.equal(907060870, ngx.crc32_long("hello"))
    assert.are.equal(907060870, ngx.crc32_short("hello"))
    assert.are.equal("'a\\'b'", ngx.quote_sql_str("a'b"))
  end)
end)

describe("time", function()
  it("formats and parses HTTP and cookie times", function()
    assert.are.equal("Thu, 01 Jan 1970 00:00:00 GMT", ngx.http_time(0))
    assert.are.equal("Thu, 01-Jan-70 00:00:00 GMT", ngx.cookie_time(0))
    assert.are.equal(784111777, ngx.parse_http_time("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.is_nil(ngx.parse_http_time("not a date"))
  end)

  it("gives the cached clock", function()
    assert.is_number(ngx.time())
    assert.truthy(ngx.now() >= ngx.time())
    assert.matches("^%d%d%d%d%-%d%d%-%d%d$", ngx.today())
    assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", ngx.localtime())
  end)
end)

describe("constants and config", function()
  it("has lua-nginx-module's constants", function()
    assert.are.equal(0, ngx.OK)
    assert.are.equal(-1, ngx.ERROR)
    assert.are.equal(200, ngx.HTTP_OK)
    assert.are.equal(404, ngx.HTTP_NOT_FOUND)
    assert.are.equal(500, ngx.HTTP_INTERNAL_SERVER_ERROR)
    assert.are.equal(4, ngx.ERR)
    assert.are.equal(8, ngx.DEBUG)
    assert.is_userdata(ngx.null)
  end)

  it("knows its phase and config", function()
    assert.are.equal("content", ngx.get_phase())
    assert.are.equal("http", ngx.config.subsystem)
    assert.is_number(ngx.config.ngx_lua_version)
    assert.matches("/$", ngx.config.prefix())
    assert.are.equal(0, ngx.worker.id())
  end)

  it("says why FFI modules cannot load", function()
    assert.error_matches(function() require "ffi" end, "module 'ffi' is not available", 1, true)
  end)
end)

describe("cjson", function()
  it("round-trips nested values", function()
    local v = { a = { 1, 2, { b = "c" } }, d = true, e = 1.5 }
    assert.are.same(v, cjson.decode(cjson.encode(v)))
  end)

  it("encodes like lua-cjson 2.1", function()
    assert.are.equal("{}", cjson.encode({}))
    assert.are.equal("[1,2,3]", cjson.encode({ 1, 2, 3 }))
    assert.are.equal("[]", cjson.encode(cjson.empty_array))
    assert.are.equal('"a\\/b"', cjson.encode("a/b"))
    assert.are.equal("0.1", cjson.encode(0.1))
    assert.are.equal("null", cjson.encode(cjson.null))
  end)

  it("decodes null as cjson.null, the same value as ngx.null", function()
    local v = cjson.decode('{"a":[1,2,{"b":null}]}')
    assert.are.equal(cjson.null, v.a[3].b)
    assert.are.equal(ngx.null, cjson.null)
  end)

  it("raises lua-cjson's errors, and cjson.safe returns them", function()
    assert.has_error(function() cjson.decode("{") end,
      "Expected object key string but found T_END at character 2")
    local safe = require "cjson.safe"
    local v, err = safe.decode("{")
    assert.is_nil(v)
    assert.are.equal("Expected object key string but found T_END at character 2", err)
  end)
end)
