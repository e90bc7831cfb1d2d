-- resty.bmemcached: every session call, its result table and its errors.
--
-- The memcached to talk to is the spec runner's (SPEC_MEMCACHED_HOST /
-- SPEC_MEMCACHED_PORT), else BMEMCACHED_HOST / BMEMCACHED_PORT from the
-- globals or the environment, else 127.0.0.1:11211. BMEMCACHED_SASL_PORT
-- names a server that requires SASL PLAIN as BMEMCACHED_SASL_USER /
-- BMEMCACHED_SASL_PASSWORD (those specs are pending without it). Each spec
-- works on its own keys; only the flush spec empties the server.

local bmemcached = require "resty.bmemcached"
local c = require "resty.bmemcached.consts"
local cjson = require "cjson"

local env = getfenv(1)
local function setting(names, default)
  for _, name in ipairs(names) do
    local v = env[name] or os.getenv(name)
    if v ~= nil and v ~= "" then return tostring(v) end
  end
  return default
end

local HOST = setting({ "SPEC_MEMCACHED_HOST", "BMEMCACHED_HOST" }, "127.0.0.1")
local PORT = tonumber(setting({ "SPEC_MEMCACHED_PORT", "BMEMCACHED_PORT" }, "11211"))
local ADDR = HOST .. ":" .. PORT

local cluster = bmemcached.cluster({ host = HOST, port = PORT })
local bucket = cluster:bucket()

local seq = 0
-- key returns a key no other spec uses.
local function key(name)
  seq = seq + 1
  return "bmem_spec:" .. name .. ":" .. seq .. ":" .. ngx.now()
end

local function with_session(fn)
  local ses = bucket:session()
  local ok, err = pcall(fn, ses)
  ses:setkeepalive()
  if not ok then error(err, 0) end
end

-- The header every synchronous result carries, with the CAS left out.
local function header(r)
  local h = r.header
  return { opaque = h.opaque, status_code = h.status_code, status = h.status, type = h.type }
end

local OK = { opaque = 0, status_code = 0, status = "No error", type = 0 }
local NOT_FOUND = { opaque = 0, status_code = 1, status = "Key not found", type = 0 }
local EXISTS = { opaque = 0, status_code = 2, status = "Key exists", type = 0 }
local NOT_STORED = { opaque = 0, status_code = 5, status = "Item not stored", type = 0 }
local ZERO_CAS = { 0, 0, 0, 0, 0, 0, 0, 0 }

local function is_cas(t)
  if type(t) ~= "table" or #t ~= 8 then return false end
  for i = 1, 8 do
    if type(t[i]) ~= "number" or t[i] < 0 or t[i] > 255 then return false end
  end
  return true
end

describe("resty.bmemcached", function()
  describe("constants", function()
    it("has the binary protocol's op codes", function()
      assert.are.equal(0x00, c.op_code.Get)
      assert.are.equal(0x01, c.op_code.Set)
      assert.are.equal(0x0a, c.op_code.Noop)
      assert.are.equal(0x11, c.op_code.SetQ)
      assert.are.equal(0x1a, c.op_code.PrependQ)
      assert.are.equal(0x1c, c.op_code.Touch)
      assert.are.equal(0x1d, c.op_code.GAT)
      assert.are.equal(0x1e, c.op_code.GATQ)
      assert.are.equal(0x20, c.op_code.SASL_List)
      assert.are.equal(0x21, c.op_code.SASL_Auth)
      assert.are.equal(0x22, c.op_code.SASL_Step)
    end)

    it("has statuses and their descriptions", function()
      assert.are.equal(0, c.status.NoError)
      assert.are.equal(1, c.status.KeyNotFound)
      assert.are.equal("Key not found", c.status_desc[c.status.KeyNotFound])
      assert.are.equal("Item not stored", c.status_desc[5])
    end)

    it("is also resty.memcached.consts, as the async examples require it", function()
      assert.are.same(c.op_code, require("resty.memcached.consts").op_code)
    end)
  end)

  describe("cluster and bucket", function()
    it("refuse bad options with a clear error", function()
      assert.has_error(function() bmemcached.cluster({ hots = "x" }) end,
        'bmemcached.cluster: unknown option "hots"')
      assert.has_error(function() bmemcached.cluster({ port = "x" }) end,
        "bmemcached.cluster: option port must be a number, got string")
      assert.has_error(function() bmemcached.cluster({ port = 70000 }) end,
        "bmemcached.cluster: port 70000 out of range 1-65535")
      assert.has_error(function() bmemcached.cluster({ host = "" }) end,
        "bmemcached.cluster: host must not be empty")
      assert.has_error(function() bmemcached.cluster({ servers = {} }) end,
        'bmemcached.cluster: servers must list at least one "host:port"')
      assert.has_error(function() bmemcached.cluster({ timeout = -1 }) end,
        "bmemcached.cluster: option timeout must be a positive number of milliseconds")
      assert.has_error(function() cluster:bucket({ pool_size = "big" }) end,
        "cluster:bucket: option pool_size must be a number, got string")
      assert.has_error(function() cluster:bucket({ name = "" }) end,
        "cluster:bucket: name must not be empty")
    end)

    it("must be called as methods", function()
      assert.has_error(function() cluster.bucket() end,
        "bad argument #1 to 'bucket' (cluster expected; call it as cluster:bucket(...))")
      assert.has_error(function() bucket.session() end,
        "bad argument #1 to 'session' (bucket expected; call it as bucket:session(...))")
    end)
  end)

  describe("session", function()
    it("set then get answers the documented shape", function()
      with_session(function(ses)
        local k = key("set")
        local r = ses:set(k, "7")
        assert.are.same(OK, header(r))
        assert.is_true(is_cas(r.header.CAS))
        assert.is_nil(r.value)
        r = ses:get(k)
        assert.are.same(OK, header(r))
        assert.are.equal("7", r.value)
        assert.is_nil(r.key)
        -- cjson prints the keys in the document's order.
        local json = cjson.encode(r)
        assert.truthy(json:match('^{"header":{"opaque":0,"CAS":%[[%d,]+%],"status_code":0,"status":"No error","type":0},"value":"7"}$'))
      end)
    end)

    it("answers a miss as a status, not an error", function()
      with_session(function(ses)
        local r = ses:get(key("miss"))
        assert.are.same({ header = { opaque = 0, CAS = ZERO_CAS, status_code = 1, status = "Key not found", type = 0 }, value = "Not found" }, r)
      end)
    end)

    it("takes numbers as keys and values", function()
      with_session(function(ses)
        local k = 880000 + seq
        seq = seq + 1
        ses:set(k, 1234567890)
        assert.are.equal("1234567890", ses:get(tostring(k)).value)
      end)
    end)

    it("getK returns the key", function()
      with_session(function(ses)
        local k = key("getk")
        ses:set(k, "v")
        local r = ses:getK(k)
        assert.are.equal(k, r.key)
        assert.are.equal("v", r.value)
        assert.truthy(cjson.encode(r):match('"type":0},"key":"' .. k:gsub("%p", "%%%0") .. '","value":"v"}$'))
      end)
    end)

    it("add stores only a new key", function()
      with_session(function(ses)
        local k = key("add")
        assert.are.same(OK, header(ses:add(k, "1")))
        local r = ses:add(k, "2")
        assert.are.same(EXISTS, header(r))
        assert.are.equal("Data exists for key.", r.value)
        assert.are.equal("1", ses:get(k).value)
      end)
    end)

    it("replace needs an existing key", function()
      with_session(function(ses)
        local k = key("replace")
        local r = ses:replace(k, "x")
        assert.are.same({ header = { opaque = 0, CAS = ZERO_CAS, status_code = 1, status = "Key not found", type = 0 }, value = "Not found" }, r)
        ses:set(k, "a")
        assert.are.same(OK, header(ses:replace(k, "b")))
        assert.are.equal("b", ses:get(k).value)
      end)
    end)

    it("set, replace and delete honour a CAS from an earlier result", function()
      with_session(function(ses)
        local k = key("cas")
        ses:set(k, "1")
        local cas = ses:get(k).header.CAS
        assert.are.same(OK, header(ses:set(k, "2", 0, cas)))
        assert.are.same(EXISTS, header(ses:set(k, "3", 0, cas)))
        assert.are.same(EXISTS, header(ses:replace(k, "3", 0, cas)))
        assert.are.same(EXISTS, header(ses:delete(k, cas)))
        local fresh = ses:get(k).header.CAS
        assert.are.same(OK, header(ses:delete(k, fresh)))
        assert.are.same(NOT_FOUND, header(ses:get(k)))
      end)
    end)

    it("append and prepend", function()
      with_session(function(ses)
        local k = key("concat")
        local r = ses:append(k, "x")
        assert.are.same(NOT_STORED, header(r))
        assert.are.equal("Not stored.", r.value)
        ses:set(k, "b")
        assert.are.same(OK, header(ses:append(k, "c")))
        assert.are.same(OK, header(ses:prepend(k, "a")))
        assert.are.equal("abc", ses:get(k).value)
        local stale = ses:get(k).header.CAS
        ses:set(k, "z")
        assert.are.same(EXISTS, header(ses:append(k, "!", stale)))
      end)
    end)

    it("touch and gat", function()
      with_session(function(ses)
        local k = key("touch")
        assert.are.same(NOT_FOUND, header(ses:touch(k, 100)))
        ses:set(k, "v", 100)
        local r = ses:touch(k, 200)
        assert.are.same(OK, header(r))
        assert.is_nil(r.value)
        r = ses:gat(k, 300)
        assert.are.same(OK, header(r))
        assert.are.equal("v", r.value)
      end)
    end)

    it("delete", function()
      with_session(function(ses)
        local k = key("delete")
        ses:set(k, "v")
        assert.are.same(OK, header(ses:delete(k)))
        local r = ses:delete(k)
        assert.are.same(NOT_FOUND, header(r))
        assert.are.equal("Not found", r.value)
      end)
    end)

    it("increment and decrement answer the counter as a number", function()
      with_session(function(ses)
        local k = key("counter")
        local r = ses:increment(k, 5, 10)
        assert.are.same(OK, header(r))
        assert.are.equal(10, r.value)
        assert.are.equal(15, ses:increment(k, 5, 10).value)
        assert.are.equal(16, ses:increment(k).value)
        assert.are.equal(13, ses:decrement(k, 3).value)
        assert.are.equal(0, ses:decrement(k, 100).value)
        ses:set(k, "abc")
        r = ses:increment(k, 1)
        assert.are.same({ opaque = 0, status_code = 6, status = "Incr/Decr on non-numeric value", type = 0 }, header(r))
        assert.are.equal("Non-numeric server-side value for incr or decr", r.value)
      end)
    end)

    it("version and sasl_list", function()
      with_session(function(ses)
        local r = ses:version()
        assert.are.same(OK, header(r))
        assert.truthy(r.value:match("^%d+%.%d+"))
        r = ses:sasl_list()
        -- a server without SASL does not know the command
        assert.are.equal(0x81, r.header.status_code)
        assert.are.equal("Unknown command", r.header.status)
      end)
    end)

    it("noop answers one response per open connection", function()
      with_session(function(ses)
        assert.are.same({}, ses:noop())
        ses:get(key("noop"))
        assert.are.same({ { header = { opaque = 0, CAS = ZERO_CAS, status_code = 0, status = "No error", type = 0 } } }, ses:noop())
      end)
    end)

    it("stat answers an array of {header, key, value}", function()
      with_session(function(ses)
        local all = ses:stat()
        assert.is_true(#all > 10)
        local seen = {}
        for _, e in ipairs(all) do
          assert.are.same(OK, header(e))
          seen[e.key] = e.value
        end
        assert.truthy(seen.pid)
        assert.truthy(seen.version)
        local settings = ses:stat("settings")
        assert.are.equal("maxbytes", settings[1].key)
      end)
    end)

    it("flush empties the server", function()
      with_session(function(ses)
        local k = key("flush")
        ses:set(k, "v")
        assert.are.same(OK, header(ses:flush()))
        assert.are.same(NOT_FOUND, header(ses:get(k)))
      end)
    end)

    it("close ends the connections and the session reconnects on next use", function()
      local ses = bucket:session()
      local k = key("close")
      ses:set(k, "v")
      ses:close()
      assert.are.same({}, ses:noop())
      assert.are.equal("v", ses:get(k).value)
      ses:setkeepalive()
    end)

    it("raises on missing arguments", function()
      with_session(function(ses)
        assert.has_error(function() ses:set("k") end, "set: key and value required")
        assert.has_error(function() ses:set(nil, "v") end, "set: key and value required")
        assert.has_error(function() ses:add("k") end, "add: key and value required")
        assert.has_error(function() ses:replace("k") end, "replace: key and value required")
        assert.has_error(function() ses:append("k") end, "append: key and value required")
        assert.has_error(function() ses:prependQ("k") end, "prependQ: key and value required")
        assert.has_error(function() ses:get() end, "get: key required")
        assert.has_error(function() ses:get("") end, "get: key required")
        assert.has_error(function() ses:delete() end, "delete: key required")
        assert.has_error(function() ses:increment() end, "increment: key required")
        assert.has_error(function() ses:touch() end, "touch: key required")
        assert.has_error(function() ses:get(string.rep("k", 251)) end, "get: key longer than 250 bytes")
        assert.has_error(function() ses:set("k", "v", "soon") end,
          "bad argument #3 to 'set' (expire must be a number, got string)")
        assert.has_error(function() ses:set("k", "v", 0, { 1, 2 }) end,
          "bad argument #4 to 'set' (cas must be the header.CAS array of an earlier result)")
        assert.has_error(function() ses.get({}, "k") end,
          "bad argument #1 to 'get' (session expected; call it as session:get(...))")
      end)
    end)

    it("raises on a refused connection, naming the server", function()
      local dead = bmemcached.cluster({ host = "127.0.0.1", port = 1 }):bucket():session()
      assert.error_matches(function() dead:get("k") end,
        "bmemcached: connect to 127.0.0.1:1 failed: .*connection refused")
    end)

    it("query says luaserve has no N1QL", function()
      with_session(function(ses)
        assert.has_error(function() ses:query("SELECT 1", {}, 1000) end,
          "bmemcached: session:query (N1QL) needs a Couchbase query service, which luaserve does not talk to; use the key-value calls")
      end)
    end)
  end)

  describe("quiet operations", function()
    it("answer the peer and the opaque, as the document's loop uses them", function()
      with_session(function(ses)
        local k = key("setq")
        local peers = {}
        local last
        for i = 1, 5 do
          local w = ses:setQ(k, "xxxxxxxxxxxxxxx" .. i)
          local sock, pool = unpack(w.peer)
          assert.are.equal("userdata", type(sock))
          assert.are.equal(ADDR .. "/default", pool)
          assert.are.equal(pool, w.peer.pool)
          assert.are.equal("number", type(w.header.opaque))
          assert.are_not.equal(last, w.header.opaque)
          last = w.header.opaque
          peers[pool] = w.peer
        end
        for _, peer in pairs(peers) do
          assert.are.same({}, ses:receive(peer)) -- only errors come back
        end
        assert.are.equal("xxxxxxxxxxxxxxx5", ses:get(k).value)
      end)
    end)

    it("report their failures through receive", function()
      with_session(function(ses)
        local k, missing = key("q"), key("q-missing")
        ses:set(k, "abc")
        local fails = {
          [ses:addQ(k, "x").header.opaque] = { 2, "Data exists for key." },
          [ses:replaceQ(missing, "x").header.opaque] = { 1, "Not found" },
          [ses:appendQ(missing, "x").header.opaque] = { 5, "Not stored." },
          [ses:prependQ(missing, "x").header.opaque] = { 5, "Not stored." },
          [ses:deleteQ(missing).header.opaque] = { 1, "Not found" },
          [ses:incrementQ(k, 1).header.opaque] = { 6, "Non-numeric server-side value for incr or decr" },
        }
        local w = ses:decrementQ(k, 1)
        fails[w.header.opaque] = { 6, "Non-numeric server-side value for incr or decr" }
        local okw = ses:setQ(key("q-ok"), "fine")
        local got = ses:receive(w.peer)
        assert.are.equal(7, #got)
        local prev = 0
        for _, f in ipairs(got) do
          local want = fails[f.header.opaque]
          assert.truthy(want)
          assert.is_true(f.header.opaque > prev) -- arrival order
          prev = f.header.opaque
          assert.are.equal(want[1], f.header.status_code)
          assert.are.equal(want[2], f.value)
          assert.are_not.equal(okw.header.opaque, f.header.opaque)
        end
        assert.are.same({}, ses:receive(w.peer))
      end)
    end)
  end)

  describe("send and receive", function()
    it("document example 1: send Set, receive its response by opaque", function()
      with_session(function(ses)
        local w = ses:send(c.op_code.Set, { key = 88, value = 1234567890, expire = 0 })
        assert.are.equal(ADDR .. "/default", w.peer[2])
        local l = ses:receive(w.peer, { opaque = w.header.opaque })
        assert.are.equal(w.header.opaque, l.header.opaque)
        assert.are.equal(0, l.header.status_code)
        assert.are.equal("1234567890", ses:get(88).value)
      end)
    end)

    it("document example 2: SetQ batch, failures by opaque", function()
      with_session(function(ses)
        local k77 = key("77")
        ses:set(k77, "old")
        local batch = {
          { k77, "1234567890", expire = 0 },
          { key("88"), "1234567890", expire = 0 },
          { key("99"), "1234567890", expire = 0 },
        }
        local peers, opaques = {}, {}
        for i, req in ipairs(batch) do
          local k, value = unpack(req)
          -- the first is an Add of an existing key: the one failure
          local op = i == 1 and c.op_code.AddQ or c.op_code.SetQ
          local w = ses:send(op, { key = k, value = value, expire = 0 })
          peers[w.peer] = true
          opaques[w.header.opaque] = req
        end
        local n = 0
        for peer in pairs(peers) do
          n = n + 1
          local fails = ses:receive(peer)
          assert.are.equal(1, #fails)
          local fail = fails[1]
          assert.are.equal(batch[1], opaques[fail.header.opaque])
          assert.are.equal("Key exists", fail.header.status)
        end
        assert.are.equal(1, n) -- one connection: one peer table
      end)
    end)

    it("receive by opaque keeps the other responses for later", function()
      with_session(function(ses)
        local k = key("keep")
        local a = ses:send(c.op_code.Set, { key = k, value = "1" })
        local b = ses:send(c.op_code.Get, { key = k })
        local miss = ses:send(c.op_code.Get, { key = key("none") })
        local rb = ses:receive(b.peer, { opaque = b.header.opaque })
        assert.are.equal("1", rb.value)
        -- a synchronous call in between stashes nothing it does not own
        assert.are.equal("1", ses:get(k).value)
        local ra = ses:receive(a.peer, { opaque = a.header.opaque })
        assert.are.equal(a.header.opaque, ra.header.opaque)
        local rest = ses:receive(a.peer, { limit = 5 })
        assert.are.equal(1, #rest)
        assert.are.equal(miss.header.opaque, rest[1].header.opaque)
        assert.are.equal(1, rest[1].header.status_code)
        -- a quiet request that succeeded has no response
        local q = ses:send(c.op_code.SetQ, { key = k, value = "2" })
        assert.is_nil(ses:receive(q.peer, { opaque = q.header.opaque }))
      end)
    end)

    it("receive with a limit answers up to that many", function()
      with_session(function(ses)
        local w
        for i = 1, 4 do w = ses:send(c.op_code.Get, { key = key("lim") }) end
        assert.are.equal(3, #ses:receive(w.peer, { limit = 3 }))
        assert.are.equal(1, #ses:receive(w.peer, { limit = 3 }))
        assert.are.same({}, ses:receive(w.peer, { limit = 3 }))
      end)
    end)

    it("send counters, touch and keyless ops", function()
      with_session(function(ses)
        local k = key("sendctr")
        local w = ses:send(c.op_code.Increment, { key = k, delta = 2, initial = 40 })
        assert.are.equal(40, ses:receive(w.peer, { opaque = w.header.opaque }).value)
        w = ses:send(c.op_code.Increment, { key = k, delta = 2 })
        assert.are.equal(42, ses:receive(w.peer, { opaque = w.header.opaque }).value)
        w = ses:send(c.op_code.Version)
        assert.truthy(ses:receive(w.peer, { opaque = w.header.opaque }).value:match("^%d"))
        w = ses:send(c.op_code.GAT, { key = k, expire = 100 })
        assert.are.equal("42", ses:receive(w.peer, { opaque = w.header.opaque }).value)
      end)
    end)

    it("raise on bad calls", function()
      with_session(function(ses)
        assert.has_error(function() ses:send(c.op_code.Set, { key = "k" }) end, "send: key and value required")
        assert.has_error(function() ses:send(c.op_code.Get, {}) end, "send: key required")
        assert.has_error(function() ses:send(0x7f, { key = "k" }) end, "send: unknown op code 127")
        assert.has_error(function() ses:send("Set", { key = "k" }) end, "send: op must be a constant from op_code, got Set")
        assert.error_matches(function() ses:receive({}) end, "peer expected")
        local w = ses:send(c.op_code.Noop)
        ses:setkeepalive()
        assert.error_matches(function() ses:receive(w.peer) end, "is no longer open in this session")
      end)
    end)
  end)

  describe("batch", function()
    it("document example: 20 Sets, a result on every item", function()
      with_session(function(ses)
        local prefix = key("batch")
        local b = {}
        for i = 1, 20 do
          b[i] = { op = c.op_code.Set, opts = { key = prefix .. i, value = "1234567890" } }
        end
        assert.is_nil(ses:batch(b, { unacked_window = 2, thread_pool_size = 4 }))
        local opaques = {}
        for i = 1, 20 do
          assert.are.same(OK, { opaque = 0, status_code = b[i].result.header.status_code,
            status = b[i].result.header.status, type = b[i].result.header.type })
          assert.is_true(is_cas(b[i].result.header.CAS))
          assert.is_nil(opaques[b[i].result.header.opaque])
          opaques[b[i].result.header.opaque] = true
          assert.are.equal("1234567890", ses:get(prefix .. i).value)
        end
      end)
    end)

    it("a failing item does not stop the others", function()
      with_session(function(ses)
        local k, ctr = key("bfail"), key("bctr")
        ses:set(k, "old")
        local b = {
          { op = c.op_code.Add, opts = { key = k, value = "x" } },
          { op = c.op_code.Set, opts = { key = k .. "new", value = "y" } },
          { op = c.op_code.AddQ, opts = { key = k, value = "x" } },
          { op = c.op_code.SetQ, opts = { key = k, value = "z" } },
          { op = c.op_code.Get, opts = { key = k } },
          { op = c.op_code.GetK, opts = { key = k .. "none" } },
          { op = c.op_code.Increment, opts = { key = ctr, delta = 3, initial = 7 } },
          { op = c.op_code.Increment, opts = { key = ctr, delta = 3, initial = 7 } },
        }
        ses:batch(b, { unacked_window = 3, thread_pool_size = 2 })
        assert.are.equal(2, b[1].result.header.status_code)
        assert.are.equal("Data exists for key.", b[1].result.value)
        assert.are.equal(0, b[2].result.header.status_code)
        assert.are.equal(2, b[3].result.header.status_code)
        assert.are.equal(0, b[4].result.header.status_code)
        -- same key, same worker: the Get sees the SetQ before it
        assert.are.equal("z", b[5].result.value)
        assert.are.equal(1, b[6].result.header.status_code)
        assert.are.equal(k .. "none", b[6].result.key)
        assert.are.equal(7, b[7].result.value)
        assert.are.equal(10, b[8].result.value)
        for i = 1, #b do
          assert.are.equal("number", type(b[i].result.header.opaque))
        end
      end)
    end)

    it("raises on a malformed item before sending anything", function()
      with_session(function(ses)
        local k = key("bad")
        assert.has_error(function()
          ses:batch({ { op = c.op_code.Set, opts = { key = k, value = "v" } }, { op = c.op_code.Set, opts = { key = k } } })
        end, "batch: item 2: key and value required")
        assert.are.same(NOT_FOUND, header(ses:get(k)))
        assert.has_error(function() ses:batch({ 5 }) end, "batch: item 1 must be a table { op = …, opts = { … } }")
      end)
    end)
  end)

  describe("SASL", function()
    local sasl_port = tonumber(setting({ "BMEMCACHED_SASL_PORT" }, ""))
    if not sasl_port then
      pending("needs BMEMCACHED_SASL_PORT (a server requiring SASL PLAIN)")
      return
    end
    local user = setting({ "BMEMCACHED_SASL_USER" }, "user")
    local password = setting({ "BMEMCACHED_SASL_PASSWORD" }, "secret")

    it("authenticates with the cluster's user and password", function()
      local ses = bmemcached.cluster({ host = HOST, port = sasl_port, user = user, password = password }):bucket():session()
      local k = key("sasl")
      assert.are.same(OK, header(ses:set(k, "v")))
      assert.are.equal("v", ses:get(k).value)
      local r = ses:sasl_list()
      assert.are.equal(0, r.header.status_code)
      assert.truthy(r.value:match("PLAIN"))
      ses:setkeepalive()
    end)

    it("authenticates as the bucket with the bucket's password", function()
      local ses = bmemcached.cluster({ host = HOST, port = sasl_port }):bucket({ name = user, password = password }):session()
      local k = key("sasl-bucket")
      assert.are.same(OK, header(ses:set(k, "v")))
      ses:setkeepalive()
    end)

    it("raises Not authenticated on bad credentials", function()
      local ses = bmemcached.cluster({ host = HOST, port = sasl_port, user = user, password = "wrong" }):bucket():session()
      assert.error_matches(function() ses:get("k") end, "Not authenticated: " .. HOST:gsub("%p", "%%%0") .. ":" .. sasl_port .. ": ")
    end)
  end)
end)
