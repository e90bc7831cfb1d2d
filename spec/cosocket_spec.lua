-- ngx.socket.tcp and ngx.socket.udp as lua-nginx-module 0.10 defines them,
-- talking to peers the spec run already has: luaserve's own HTTP listener
-- and the memcached under test (SPEC_MEMCACHED_HOST / SPEC_MEMCACHED_PORT).
-- The byte-level corner cases (partial results, receiveuntil sizes, pool
-- bounds, timeouts against a silent peer) are in luabind/ngx_socket_test.go.

local env = getfenv(1)
local MC_HOST = tostring(env.SPEC_MEMCACHED_HOST or "127.0.0.1")
local MC_PORT = tonumber(env.SPEC_MEMCACHED_PORT or 11211)
local HTTP_HOST, HTTP_PORT = spec_http.addr:match("^(.+):(%d+)$")
HTTP_PORT = tonumber(HTTP_PORT)

local function pack(...)
  return { n = select("#", ...), ... }
end

local function memc()
  local s = ngx.socket.tcp()
  s:settimeout(1000)
  assert.are.equal(1, s:connect(MC_HOST, MC_PORT))
  return s
end

describe("ngx.socket.tcp", function()
  it("speaks HTTP to luaserve itself: receiveuntil for the head, *l and *a for the body", function()
    local s = ngx.socket.tcp()
    s:settimeout(2000)
    assert.are.equal(1, s:connect(HTTP_HOST, HTTP_PORT))
    local req = { "GET /cosocket/body HTTP/1.1\r\n", "Host: localhost\r\n", { "Connection: close\r\n", "\r\n" } }
    assert.are.equal(#table.concat({ req[1], req[2], req[3][1], req[3][2] }), s:send(req))
    local head = assert(s:receiveuntil("\r\n\r\n")())
    assert.matches("^HTTP/1.1 200 OK\r\n", head)
    assert.matches("\r\nX%-Test: yes", head)
    assert.are.equal("line one", s:receive())
    assert.are.equal("line two", s:receive("*l"))
    local reader = s:receiveuntil("--boundary--", { inclusive = true })
    assert.are.equal("the --boundary--", reader())
    assert.are.equal(" rest", s:receive("*a"))
    assert.are.equal("", s:receive("*a"))
    assert.are.same({ nil, "closed", "", n = 3 }, pack(s:receive()))
    assert.are.equal(1, s:close())
  end)

  it("reads a sized stream with receiveuntil(pattern)(size)", function()
    local s = memc()
    local k = "cosocket_spec:" .. ngx.now()
    s:send("set " .. k .. " 0 0 43\r\nhello, world! -agentzh\r\n--abcedhb blah blah\r\n")
    assert.are.equal("STORED", s:receive())
    s:send("get " .. k .. "\r\n")
    assert.are.equal("VALUE " .. k .. " 0 43", s:receive())
    local reader = s:receiveuntil("\r\n--abcedhb")
    local chunks = {}
    while true do
      local data, err = reader(4)
      if not data then
        assert.is_nil(err)
        break
      end
      chunks[#chunks + 1] = data
    end
    assert.are.same({ "hell", "o, w", "orld", "! -a", "gent", "zh" }, chunks)
    assert.are.equal(" blah blah", s:receive(10))
    assert.are.equal("", s:receive())
    assert.are.equal("END", s:receive())
    assert.are.equal(1, s:setkeepalive())
  end)

  it("reuses kept-alive connections and refuses a socket with unread data", function()
    local s = memc()
    s:send("version\r\n")
    assert.matches("^VERSION ", s:receive())
    assert.are.equal(1, s:setkeepalive(10000, 10))
    assert.are.same({ nil, "closed", n = 2 }, pack(s:getreusedtimes()))
    s = memc()
    assert.is_true(s:getreusedtimes() >= 1)
    s:send("version\r\n")
    assert.matches("^VERS", s:receive(4))
    assert.are.same({ nil, "unread data in buffer", n = 2 }, pack(s:setkeepalive()))
    assert.matches("^ION ", s:receive())
    assert.are.equal(1, s:close())
    assert.are.same({ nil, "closed", n = 2 }, pack(s:close()))
  end)

  it("connects with ngx.socket.connect and names the pool", function()
    local s = assert(ngx.socket.connect(MC_HOST, MC_PORT))
    assert.are.equal(1, s:setkeepalive())
    local t = ngx.socket.tcp()
    assert.are.equal(1, t:connect(MC_HOST, MC_PORT, { pool = "cosocket_spec_pool", pool_size = 2 }))
    assert.are.equal(0, t:getreusedtimes())
    t:close()
  end)

  it("reports errors with OpenResty's strings", function()
    local s = ngx.socket.tcp()
    s:settimeout(1000)
    assert.are.same({ nil, "connection refused", n = 2 }, pack(s:connect("127.0.0.1", 1)))
    assert.are.same({ nil, "missing the port number", n = 2 }, pack(s:connect("127.0.0.1")))
    assert.are.same({ nil, "bad port number: 70000", n = 2 }, pack(s:connect("127.0.0.1", 70000)))
    assert.are.same({ nil, "closed", n = 2 }, pack(s:send("x")))
    assert.are.same({ nil, "closed", n = 2 }, pack(s:receive()))
    assert.are.same({ nil, "pattern is empty", n = 2 }, pack(s:receiveuntil("")))
    assert.has_error(function() s:settimeout(-1) end, "bad timeout value")
    assert.has_error(function() s:connect() end,
      "ngx.socket connect: expecting 2, 3, or 4 arguments (including the object), but seen 1")
  end)

  it("honours lua_socket_read_timeout and lua_socket_log_errors", function()
    local q = "?host=" .. MC_HOST .. "&port=" .. MC_PORT
    local res = assert(spec_http.get("/cosocket/read-timeout" .. q))
    assert.are.equal("niltimeout\ntrue\n", res.body)
    res = assert(spec_http.get("/cosocket/quiet" .. q))
    assert.are.equal("niltimeout\n", res.body)
  end)

  it("works in rewrite_by_lua", function()
    local res = assert(spec_http.get("/cosocket/rewrite?host=" .. MC_HOST .. "&port=" .. MC_PORT))
    assert.are.equal("true\n", res.body)
  end)
end)

describe("ngx.socket.udp", function()
  it("is closed until setpeername, then sends and times out waiting for an answer", function()
    local u = ngx.socket.udp()
    assert.are.same({ nil, "closed", n = 2 }, pack(u:send("x")))
    assert.are.equal(1, u:setpeername("127.0.0.1", HTTP_PORT))
    u:settimeout(20)
    assert.are.equal(1, u:send({ "da", "ta" }))
    local data, err = u:receive()
    assert.is_nil(data)
    assert.is_true(err == "timeout" or err == "connection refused", err)
    assert.are.equal(1, u:close())
    assert.are.same({ nil, "closed", n = 2 }, pack(u:close()))
  end)
end)
