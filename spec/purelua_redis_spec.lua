-- The original pure-Lua lua-resty-redis (Debian's lua-nginx-redis, required
-- as "nginx.redis") running unchanged over ngx.socket.tcp against a real
-- redis-server. The results are those lua-resty-redis gives under OpenResty:
-- status replies as strings, integers as numbers, a nil bulk as ngx.null,
-- server errors as false plus the message.
--
-- spec/purelua_test.go starts redis-server and hands its address over as
-- $purelua_redis_host / $purelua_redis_port; without them (a plain run of
-- every spec) this file is pending.

local DEBIAN_LUA = "/usr/share/lua/5.1/?.lua"

local saved_path = package.path
package.path = DEBIAN_LUA .. ";" .. package.path
local have_lib, redis = pcall(require, "nginx.redis")
package.path = saved_path

local HOST = ngx.var.purelua_redis_host
local PORT = tonumber(ngx.var.purelua_redis_port)

local seq = 0
local function key(name)
  seq = seq + 1
  return "plredis:" .. name .. ":" .. seq .. ":" .. ngx.now()
end

local function connect()
  local red = redis:new()
  red:set_timeout(1000)
  local ok, err = red:connect(HOST, PORT)
  assert(ok, err)
  return red
end

local function pack(...)
  return { n = select("#", ...), ... }
end

describe("nginx.redis (pure Lua over ngx.socket.tcp)", function()
  if not have_lib then
    pending("lua-nginx-redis is not installed (" .. tostring(redis) .. ")")
    return
  end
  if not HOST or not PORT then
    pending("no redis-server: run through spec/purelua_test.go")
    return
  end

  it("runs the document's synopsis", function()
    local red = redis:new()
    red:set_timeout(1000)
    local ok, err = red:connect(HOST, PORT)
    assert.are.equal(1, ok)
    assert.is_nil(err)
    local dog = key("dog")
    assert.are.same({ "OK", n = 1 }, pack(red:set(dog, "an animal")))
    assert.are.equal("an animal", red:get(dog))
    assert.are.equal(ngx.null, red:get(key("cat")))
    assert.are.equal(1, red:set_keepalive(10000, 100))
  end)

  it("returns integers as numbers and status replies as strings", function()
    local red = connect()
    local k = key("n")
    assert.are.equal(1, red:incr(k))
    assert.are.equal(11, red:incrby(k, 10))
    assert.are.equal("PONG", red:ping())
    assert.are.equal(1, red:del(k))
    assert.are.equal(0, red:del(k))
    red:set_keepalive()
  end)

  it("reads multi-bulk replies, nested ones and nil elements", function()
    local red = connect()
    local l = key("list")
    assert.are.equal(3, red:rpush(l, "a", "b", "c"))
    assert.are.same({ "a", "b", "c" }, red:lrange(l, 0, -1))
    local h = key("hash")
    assert.are.equal("OK", red:hmset(h, { f1 = "v1", f2 = "v2" }))
    assert.are.equal("OK", red:hmset(h, "f3", "v3"))
    local all = red:hgetall(h)
    assert.are.same({ f1 = "v1", f2 = "v2", f3 = "v3" }, red:array_to_hash(all))
    assert.are.same({ "v1", ngx.null, "v3" }, red:hmget(h, "f1", "nope", "f3"))
    assert.are.same({ 1, { "a", "b" }, "x" }, red:eval("return {1, {'a', 'b'}, 'x'}", 0))
    assert.are.same({}, red:lrange(key("empty"), 0, -1))
    red:set_keepalive()
  end)

  it("returns server errors as false and the message", function()
    local red = connect()
    local k = key("str")
    assert.are.equal("OK", red:set(k, "x"))
    assert.are.same({ false, "WRONGTYPE Operation against a key holding the wrong kind of value", n = 2 },
      pack(red:lpush(k, "y")))
    local res, err = red:no_such_command("a")
    assert.are.equal(false, res)
    assert.matches("^ERR unknown command 'no_such_command'", err)
    -- the connection is still in sync after an error reply
    assert.are.equal("x", red:get(k))
    red:set_keepalive()
  end)

  it("round-trips values larger than the socket buffer, binary included", function()
    local red = connect()
    local k = key("big")
    local big = string.rep("a\r\n\0\255", 20000)
    assert.are.equal("OK", red:set(k, big))
    local got = red:get(k)
    assert.are.equal(#big, #got)
    assert.is_true(got == big)
    assert.are.equal(#big, red:strlen(k))
    red:set_keepalive()
  end)

  it("pipelines commands", function()
    local red = connect()
    local k = key("pipe")
    red:init_pipeline()
    red:set(k, "1")
    red:incr(k)
    red:get(k)
    red:lpush(k, "x")
    red:get(key("missing"))
    local res, err = red:commit_pipeline()
    assert.is_nil(err)
    assert.are.same({ "OK", 2, "2",
      { false, "WRONGTYPE Operation against a key holding the wrong kind of value" }, ngx.null }, res)
    red:init_pipeline(2)
    red:get(k)
    red:cancel_pipeline()
    assert.are.equal("2", red:get(k))
    assert.are.same({ nil, "no pipeline", n = 2 }, pack(red:commit_pipeline()))
    red:set_keepalive()
  end)

  it("selects databases and expires keys", function()
    local red = connect()
    local k = key("db")
    assert.are.equal("OK", red:select(1))
    assert.are.equal("OK", red:set(k, "in db 1"))
    assert.are.equal(1, red:expire(k, 100))
    local ttl = red:ttl(k)
    assert.is_true(ttl > 0 and ttl <= 100)
    assert.are.equal("OK", red:select(0))
    assert.are.equal(ngx.null, red:get(k))
    red:close()
  end)

  it("reuses kept-alive connections", function()
    local red = connect()
    red:ping()
    assert.are.equal(1, red:set_keepalive(10000, 10))
    assert.are.same({ nil, "closed", n = 2 }, pack(red:get_reused_times()))
    assert.are.same({ nil, "closed", n = 2 }, pack(red:get("x")))
    red = connect()
    local n = red:get_reused_times()
    assert.is_true(n > 0, "reused " .. tostring(n))
    assert.are.equal("PONG", red:ping())
    red:set_keepalive()
  end)

  it("subscribes and receives published messages", function()
    local sub = connect()
    local chan = key("chan")
    assert.are.same({ "subscribe", chan, 1 }, sub:subscribe(chan))
    local pub = connect()
    assert.are.equal(1, pub:publish(chan, "hello"))
    assert.are.same({ "message", chan, "hello" }, sub:read_reply())
    sub:set_timeout(50)
    assert.are.same({ nil, "timeout", n = 2 }, pack(sub:read_reply()))
    assert.are.same({ "unsubscribe", chan, 0 }, sub:unsubscribe(chan))
    sub:close()
    pub:set_keepalive()
  end)

  it("times out a blocked command and reports socket errors", function()
    local red = connect()
    red:set_timeout(100)
    local res, err = red:blpop(key("never"), 0)
    assert.is_nil(res)
    assert.are.equal("timeout", err)
    red:close()
    assert.are.same({ nil, "closed", n = 2 }, pack(red:get("x")))

    local refused = redis:new()
    refused:set_timeout(1000)
    assert.are.same({ nil, "connection refused", n = 2 }, pack(refused:connect("127.0.0.1", 1)))
  end)
end)
