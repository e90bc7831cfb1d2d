-- resty.memcached: lua-resty-memcached's API, Go-native. Every method, its
-- return convention and its documented errors, written so that the same file
-- can run against the original pure-Lua library over ngx.socket.tcp: the
-- values compared are what lua-resty-memcached's own code returns (flags, CAS
-- uniques and incr/decr results are strings; a miss is three nils).
--
-- The memcached to talk to is the spec runner's (SPEC_MEMCACHED_HOST /
-- SPEC_MEMCACHED_PORT), else MEMCACHED_HOST / MEMCACHED_PORT from the
-- globals or the environment, else 127.0.0.1:11211. Each spec works on its
-- own keys; only the synopsis spec empties the server.
--
-- RESTY_MEMCACHED_MODULE=nginx.memcached runs the same specs on Debian's
-- lua-nginx-memcached (the original library, v0.13, over ngx.socket.tcp);
-- what that version lacks (pipelines, set_timeouts) is then pending.

local env = getfenv(1)
local function setting(names, default)
  for _, name in ipairs(names) do
    local v = env[name] or os.getenv(name)
    if v ~= nil and v ~= "" then return tostring(v) end
  end
  return default
end

local MODULE = setting({ "RESTY_MEMCACHED_MODULE" }, "resty.memcached")
if MODULE ~= "resty.memcached" and not pcall(require, MODULE) then
  package.path = package.path .. ";/usr/share/lua/5.1/?.lua"
end
local memcached = require(MODULE)

-- needs marks a spec pending when the module lacks a v0.17 method.
local function needs(method)
  if not memcached[method] then
    pending(MODULE .. " has no " .. method)
  end
end

local HOST = setting({ "SPEC_MEMCACHED_HOST", "MEMCACHED_HOST" }, "127.0.0.1")
local PORT = tonumber(setting({ "SPEC_MEMCACHED_PORT", "MEMCACHED_PORT" }, "11211"))

local seq = 0
-- key returns a key no other spec uses.
local function key(name)
  seq = seq + 1
  return "rmc_spec:" .. name .. ":" .. seq .. ":" .. ngx.now()
end

local function connect(opts)
  local memc = assert(memcached:new(opts))
  assert.are.equal(1, memc:set_timeout(1000))
  assert.are.equal(1, memc:connect(HOST, PORT))
  return memc
end

-- pack keeps trailing nils: pack(memc:get(k)) is {n = 3} on a miss.
local function pack(...)
  return { n = select("#", ...), ... }
end

describe("resty.memcached", function()
  it("runs the document's synopsis", function()
    local memc, err = memcached:new()
    assert.is_nil(err)
    memc:set_timeout(1000)
    local ok, err = memc:connect(HOST, PORT)
    assert.are.equal(1, ok)
    assert.is_nil(err)
    assert.are.equal(1, memc:flush_all())
    assert.are.equal(1, memc:set("dog", 32))
    local res, flags, err = memc:get("dog")
    assert.are.equal("32", res)
    assert.are.equal("0", flags)
    assert.is_nil(err)
    assert.are.equal(1, memc:set_keepalive(10000, 100))
  end)

  describe("storage commands", function()
    it("set, add, replace, append, prepend answer 1 or the server's reply", function()
      local memc = connect()
      local k = key("store")
      assert.are.same({ 1, n = 1 }, pack(memc:set(k, "v", 0, 7)))
      assert.are.same({ nil, "NOT_STORED", n = 2 }, pack(memc:add(k, "w")))
      assert.are.same({ nil, "NOT_STORED", n = 2 }, pack(memc:replace(key("none"), "w")))
      assert.are.same({ nil, "NOT_STORED", n = 2 }, pack(memc:append(key("none"), "w")))
      assert.are.same({ nil, "NOT_STORED", n = 2 }, pack(memc:prepend(key("none"), "w")))
      assert.are.equal(1, memc:replace(k, "x", 0, 3))
      assert.are.equal(1, memc:append(k, "-end"))
      assert.are.equal(1, memc:prepend(k, "start-"))
      assert.are.same({ "start-x-end", "3", n = 2 }, pack(memc:get(k)))
      local k2 = key("add")
      assert.are.equal(1, memc:add(k2, 5))
      assert.are.same({ "5", "0", n = 2 }, pack(memc:get(k2)))
      memc:set_keepalive()
    end)

    it("concatenates nested tables of strings as the value", function()
      local memc = connect()
      local k = key("table")
      assert.are.equal(1, memc:set(k, { "a ", { "kind of" }, " animal" }))
      assert.are.equal("a kind of animal", (memc:get(k)))
      assert.are.equal(1, memc:append(k, { "!", { "!" } }))
      assert.are.equal("a kind of animal!!", (memc:get(k)))
      memc:set_keepalive()
    end)

    it("cas stores only what was not changed since gets", function()
      local memc = connect()
      local k = key("cas")
      assert.are.equal(1, memc:set(k, "1", 0, 2))
      local value, flags, cas = memc:gets(k)
      assert.are.equal("1", value)
      assert.are.equal("2", flags)
      assert.is_string(cas)
      assert.truthy(cas:match("^%d+$"))
      assert.are.equal(1, memc:cas(k, "2", cas))
      assert.are.same({ nil, "EXISTS", n = 2 }, pack(memc:cas(k, "3", cas)))
      assert.are.same({ nil, "NOT_FOUND", n = 2 }, pack(memc:cas(key("none"), "3", cas)))
      assert.are.equal("2", (memc:get(k)))
      memc:set_keepalive()
    end)
  end)

  describe("retrieval", function()
    it("answers a miss with three nils, and gets with four", function()
      local memc = connect()
      assert.are.same({ n = 3 }, pack(memc:get(key("miss"))))
      assert.are.same({ n = 4 }, pack(memc:gets(key("miss"))))
      memc:set_keepalive()
    end)

    it("gets many keys into a table keyed by the original keys", function()
      local memc = connect()
      local a, b = key("multi a"), key("multi/b%")
      assert.are.equal(1, memc:set(a, "1"))
      assert.are.equal(1, memc:set(b, "22", 0, 5))
      local res, err = memc:get({ a, key("missing"), b })
      assert.is_nil(err)
      assert.are.same({ [a] = { "1", "0" }, [b] = { "22", "5" } }, res)
      res = assert(memc:gets({ b }))
      assert.are.equal("22", res[b][1])
      assert.are.equal("5", res[b][2])
      assert.truthy(res[b][3]:match("^%d+$"))
      assert.are.same({ {}, nil, n = 2 }, pack(memc:get({})))
      memc:set_keepalive()
    end)
  end)

  describe("other commands", function()
    it("touch, delete, incr and decr", function()
      local memc = connect()
      local k = key("counter")
      assert.are.equal(1, memc:set(k, 32))
      assert.are.equal(1, memc:touch(k, 100))
      assert.are.same({ nil, "NOT_FOUND", n = 2 }, pack(memc:touch(key("none"), 100)))
      assert.are.equal("33", memc:incr(k, 1))
      assert.are.equal("30", memc:decr(k, 3))
      assert.are.equal("0", memc:decr(k, 100))
      assert.are.same({ nil, "NOT_FOUND", n = 2 }, pack(memc:incr(key("none"), 1)))
      local s = key("text")
      assert.are.equal(1, memc:set(s, "abc"))
      local v, err = memc:incr(s, 1)
      assert.is_nil(v)
      assert.truthy(err:match("^CLIENT_ERROR "))
      assert.are.equal(1, memc:delete(k))
      assert.are.same({ nil, "NOT_FOUND", n = 2 }, pack(memc:delete(k)))
      memc:set_keepalive()
    end)

    it("stats, version and verbosity", function()
      local memc = connect()
      local lines = assert(memc:stats())
      assert.truthy(#lines > 5)
      for _, line in ipairs(lines) do
        assert.truthy(line:match("^STAT %S+ "))
      end
      assert.truthy(memc:version():match("^%d+%.%d+%.%d+"))
      assert.are.equal(1, memc:verbosity(1))
      assert.are.equal(1, memc:verbosity(0))
      memc:set_keepalive()
    end)

    it("quit makes the server hang up", function()
      local memc = connect()
      assert.are.equal(1, memc:quit())
      local v, flags, err = memc:get(key("after quit"))
      assert.is_nil(v)
      -- Sending to a socket the server has shut can also draw a reset.
      assert.truthy(err == "closed" or err == "connection reset by peer")
    end)
  end)

  describe("keys", function()
    it("are URI-escaped on the way out and back", function()
      local memc = connect()
      local raw = connect({ key_transform = { tostring, tostring } })
      local keys = { key("a b"), key("100%"), key("日本語"), key("+plus") }
      for i, k in ipairs(keys) do
        assert.are.equal(1, memc:set(k, "v" .. i))
      end
      for i, k in ipairs(keys) do
        assert.are.equal("v" .. i, (memc:get(k)))
        assert.are.equal("v" .. i, (raw:get(ngx.escape_uri(k))))
      end
      local res = assert(memc:get(keys))
      for i, k in ipairs(keys) do
        assert.are.equal("v" .. i, res[k][1])
      end
      memc:set_keepalive()
      raw:set_keepalive()
    end)

    it("go through key_transform when one is given", function()
      local prefix = key("pre") .. ":"
      local memc = connect({ key_transform = {
        function(k) return prefix .. k end,
        function(k) return k:sub(#prefix + 1) .. "!" end,
      } })
      local raw = connect({ key_transform = { tostring, tostring } })
      assert.are.equal(1, memc:set("k", "v"))
      assert.are.equal("v", (raw:get(prefix .. "k")))
      assert.are.same({ ["k!"] = { "v", "0" } }, memc:get({ "k" }))
      memc:set_keepalive()
      raw:set_keepalive()
    end)

    it("key_transform must hold two functions", function()
      assert.are.same({ nil, "expecting key_transform = { escape, unescape } table", n = 2 },
        pack(memcached:new({ key_transform = { ngx.escape_uri } })))
    end)
  end)

  describe("connections", function()
    it("come back from the pool, as get_reused_times shows", function()
      local memc = connect()
      local first = memc:get_reused_times()
      assert.are.equal(1, memc:set_keepalive(10000, 10))
      memc = connect()
      assert.are.equal(first + 1, memc:get_reused_times())
      assert.are.equal(1, memc:close())
    end)

    it("are closed after set_keepalive and close", function()
      local memc = connect()
      assert.are.equal(1, memc:set_keepalive())
      assert.are.same({ nil, "closed", n = 2 }, pack(memc:set(key("closed"), 1)))
      assert.are.same({ nil, nil, "closed", n = 3 }, pack(memc:get(key("closed"))))
      assert.are.same({ nil, "closed", n = 2 }, pack(memc:set_keepalive()))
      assert.are.same({ nil, "closed", n = 2 }, pack(memc:get_reused_times()))
      assert.are.same({ nil, "closed", n = 2 }, pack(memc:close()))
      assert.are.equal(1, memc:connect(HOST, PORT))
      assert.are.equal(1, memc:close())
      assert.are.same({ nil, "closed", n = 2 }, pack(memc:close()))
    end)

    it("are not there before connect", function()
      local memc = assert(memcached:new())
      assert.are.same({ nil, nil, "closed", n = 3 }, pack(memc:get("k")))
      assert.are.same({ nil, "closed", n = 2 }, pack(memc:set("k", 1)))
    end)

    it("answer not initialized when called on the module", function()
      assert.are.same({ nil, nil, "not initialized", n = 3 }, pack(memcached.get(memcached, "k")))
      assert.are.same({ nil, "not initialized", n = 2 }, pack(memcached:set("k", 1)))
      assert.are.same({ nil, "not initialized", n = 2 }, pack(memcached:connect(HOST, PORT)))
    end)

    it("report a refused connection", function()
      local memc = assert(memcached:new())
      memc:set_timeout(1000)
      -- Port 1 on loopback has no listener on any sane test machine.
      assert.are.same({ nil, "connection refused", n = 2 }, pack(memc:connect("127.0.0.1", 1)))
      assert.are.same({ nil, "bad port number: 70000", n = 2 }, pack(memc:connect("127.0.0.1", 70000)))
    end)

    it("accept set_timeouts", function()
      needs("set_timeouts")
      local memc = assert(memcached:new())
      assert.are.equal(1, memc:set_timeouts(1000, 1000, 1000))
      assert.are.equal(1, memc:connect(HOST, PORT))
      assert.are.equal(1, memc:set_keepalive())
    end)
  end)

  describe("pipelines", function()
    it("send queued commands in one run and return each one's results", function()
      needs("init_pipeline")
      local memc = connect()
      local dog, cat = key("dog"), key("cat")
      assert.is_nil(memc:init_pipeline())
      assert.are.equal("already init pipeline", memc:init_pipeline())
      memc:set(dog, 32)
      memc:add(dog, 1)
      memc:get(dog)
      memc:get(cat)
      memc:incr(dog, 2)
      local results, err = memc:commit_pipeline()
      assert.is_nil(err)
      assert.are.same({ { 1 }, { nil, "NOT_STORED" }, { "32", "0" }, {}, { "34" } }, results)
      assert.are.same({ nil, "no pipeline", n = 2 }, pack(memc:commit_pipeline()))
      memc:set_keepalive()
    end)

    it("cancel_pipeline discards what was queued", function()
      needs("init_pipeline")
      local memc = connect()
      local k = key("cancelled")
      memc:init_pipeline(10)
      memc:set(k, 1)
      memc:cancel_pipeline()
      assert.are.same({ nil, "no pipeline", n = 2 }, pack(memc:commit_pipeline()))
      assert.are.same({ n = 3 }, pack(memc:get(k)))
      assert.are.equal("bad n arg: number expected, but got string", memc:init_pipeline("x"))
      memc:set_keepalive()
    end)
  end)
end)
