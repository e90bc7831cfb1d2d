-- The original pure-Lua lua-resty-memcached (Debian's lua-nginx-memcached,
-- required as "nginx.memcached") running unchanged over ngx.socket.tcp, and
-- the Go-native resty.memcached, driven through one table of operations
-- against the same memcached: every operation's results must agree line for
-- line. Where a line is also pinned (want), both must say exactly that.
--
-- The memcached is the spec runner's (SPEC_MEMCACHED_HOST / _PORT). The
-- library is found through /usr/share/lua/5.1, where Debian installs it;
-- without it the comparisons are pending.

local DEBIAN_LUA = "/usr/share/lua/5.1/?.lua"

local env = getfenv(1)
local function setting(names, default)
  for _, name in ipairs(names) do
    local v = env[name] or os.getenv(name)
    if v ~= nil and v ~= "" then return tostring(v) end
  end
  return default
end

local HOST = setting({ "SPEC_MEMCACHED_HOST", "MEMCACHED_HOST" }, "127.0.0.1")
local PORT = tonumber(setting({ "SPEC_MEMCACHED_PORT", "MEMCACHED_PORT" }, "11211"))

local saved_path = package.path
package.path = DEBIAN_LUA .. ";" .. package.path
local have_purelua, purelua = pcall(require, "nginx.memcached")
package.path = saved_path
local native = require "resty.memcached"

-- dump renders results so that two modules' outputs compare as strings:
-- tables with sorted keys, strings quoted, trailing nils kept.
local function dump(v)
  local t = type(v)
  if t == "string" then
    -- not %q, which LuaJIT and gopher-lua write differently
    return '"' .. v:gsub('[%c"\\\128-\255]', function(c) return "\\" .. c:byte() end) .. '"'
  end
  if t ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = dump(k) .. "=" .. dump(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function dumpall(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = dump((select(i, ...))) end
  return table.concat(parts, " ")
end

-- cas replaces a CAS unique (which differs between runs) by a marker.
local function cas(v)
  if type(v) == "string" and v:match("^%d+$") then return "<cas>" end
  return v
end

local function connect(mod, opts)
  local m = assert(mod:new(opts))
  m:set_timeout(1000)
  assert(m:connect(HOST, PORT))
  return m
end

-- Each operation gets the connected client m, K (which turns a name into a
-- key of this run), the module and a table shared by the run's operations.
local ops = {
  { "flush_all", function(m) return m:flush_all() end, "1" },
  { "get: a miss is three nils", function(m, K) return m:get(K "a") end, "nil nil nil" },
  { "set", function(m, K) return m:set(K "a", "hello", 0, 7) end, "1" },
  { "get: value and flags", function(m, K) return m:get(K "a") end, [["hello" "7"]] },
  { "add: existing key", function(m, K) return m:add(K "a", "x") end, [[nil "NOT_STORED"]] },
  { "add: number value", function(m, K) return m:add(K "n", 10) end, "1" },
  { "replace: missing key", function(m, K) return m:replace(K "none", "x") end, [[nil "NOT_STORED"]] },
  { "replace", function(m, K) return m:replace(K "a", "hi", 0, 3) end, "1" },
  { "append", function(m, K) return m:append(K "a", "-end") end, "1" },
  { "prepend", function(m, K) return m:prepend(K "a", "start-") end, "1" },
  { "append: missing key", function(m, K) return m:append(K "none", "x") end, [[nil "NOT_STORED"]] },
  { "prepend: missing key", function(m, K) return m:prepend(K "none", "x") end, [[nil "NOT_STORED"]] },
  { "get: after append and prepend", function(m, K) return m:get(K "a") end, [["start-hi-end" "3"]] },
  { "set: nested table value", function(m, K) return m:set(K "t", { "a", { "b", "c" }, "d" }) end, "1" },
  { "get: nested value", function(m, K) return m:get(K "t") end, [["abcd" "0"]] },
  { "set: empty value", function(m, K) return m:set(K "e", "") end, "1" },
  { "get: empty value", function(m, K) return m:get(K "e") end, [["" "0"]] },
  { "set: binary value", function(m, K) return m:set(K "bin", "a\r\nEND\r\n\0z") end, "1" },
  { "get: binary value", function(m, K) return m:get(K "bin") end, dumpall("a\r\nEND\r\n\0z", "0") },
  { "get: keys", function(m, K) return m:get({ K "a", K "none", K "t", K "e" }) end },
  { "get: no keys", function(m) return m:get({}) end, "{} nil" },
  { "gets: value, flags, cas", function(m, K, _, ctx)
      local v, f, u, err = m:gets(K "a")
      ctx.cas = u
      return v, f, cas(u), err
    end, [["start-hi-end" "3" "<cas>" nil]] },
  { "cas", function(m, K, _, ctx) return m:cas(K "a", "swapped", ctx.cas, 0, 9) end, "1" },
  { "cas: stale unique", function(m, K, _, ctx) return m:cas(K "a", "again", ctx.cas) end, [[nil "EXISTS"]] },
  { "cas: missing key", function(m, K, _, ctx) return m:cas(K "none", "x", ctx.cas) end, [[nil "NOT_FOUND"]] },
  { "gets: keys", function(m, K)
      local res, err = m:gets({ K "a", K "none", K "n" })
      if type(res) == "table" then
        for _, v in pairs(res) do v[3] = cas(v[3]) end
      end
      return res, err
    end },
  { "gets: miss", function(m, K) return m:gets(K "none") end },
  { "incr", function(m, K) return m:incr(K "n", 5) end, [["15"]] },
  { "decr stops at zero", function(m, K) return m:decr(K "n", 100) end, [["0"]] },
  { "incr: missing key", function(m, K) return m:incr(K "none", 1) end, [[nil "NOT_FOUND"]] },
  { "incr: not a number", function(m, K) return m:incr(K "a", 1) end },
  { "incr: bad delta", function(m, K) return m:incr(K "n", "x") end },
  { "touch", function(m, K) return m:touch(K "a", 100) end, "1" },
  { "touch: missing key", function(m, K) return m:touch(K "none", 100) end, [[nil "NOT_FOUND"]] },
  { "delete", function(m, K) return m:delete(K "t") end, "1" },
  { "delete: missing key", function(m, K) return m:delete(K "t") end, [[nil "NOT_FOUND"]] },
  { "keys are escaped and come back unescaped", function(m, K)
      local k = K "a b%c\195\188"
      local ok, err = m:set(k, "esc")
      local res = m:get({ k })
      return ok, err, m:get(k), res
    end },
  { "key_transform", function(_, K, mod)
      local m = connect(mod, { key_transform = {
        function(k) return "x" .. k end,
        function(k) return k:sub(2) end,
      } })
      local ok = m:set(K "kt", "v")
      local res = m:get({ K "kt" })
      local plain = connect(mod)
      local direct = plain:get("x" .. K "kt")
      m:close()
      plain:close()
      return ok, res, direct
    end },
  { "key_transform: bad table", function(_, _, mod) return mod:new({ key_transform = { 1 } }) end },
  { "version", function(m) local v, err = m:version() return type(v), err end, [["string" nil]] },
  { "verbosity", function(m) return m:verbosity(1) end, "1" },
  { "stats", function(m)
      local lines, err = m:stats()
      return type(lines), err, type(lines) == "table" and lines[1] ~= nil and lines[1]:match("^STAT ") ~= nil
    end, [["table" nil true]] },
  { "stats: settings", function(m)
      local lines, err = m:stats("settings")
      return type(lines), err, type(lines) == "table" and #lines > 0
    end },
  { "flush_all with a delay", function(m) return m:flush_all(0) end, "1" },
  { "set_keepalive then get_reused_times", function(_, _, mod)
      local m = connect(mod)
      local ok = m:set_keepalive(10000, 10)
      local after, err = m:get_reused_times()
      m = connect(mod)
      local n = m:get_reused_times()
      m:set_keepalive()
      return ok, after, err, type(n), n > 0
    end, [[1 nil "closed" "number" true]] },
  { "an object after set_keepalive is closed", function(m, K)
      local ok = m:set_keepalive()
      return ok, m:get(K "a")
    end, [[1 nil nil "closed"]] },
  { "connect again after set_keepalive", function(m) return m:connect(HOST, PORT) end, "1" },
  { "close, then close again", function(m) return m:close(), m:close() end, [[1 nil "closed"]] },
  { "operations on a closed object", function(m, K)
      return dumpall(m:set(K "a", 1)), dumpall(m:get(K "a")), dumpall(m:get({ K "a" })), dumpall(m:incr(K "n", 1))
    end },
  { "quit", function(_, _, mod) return connect(mod):quit() end, "1" },
  { "connection refused", function(_, _, mod)
      local m = mod:new()
      m:set_timeout(1000)
      return m:connect("127.0.0.1", 1)
    end, [[nil "connection refused"]] },
  { "get before connect", function(_, K, mod) return mod:new():get(K "a") end },
  { "set before connect", function(_, K, mod) return mod:new():set(K "a", "x") end },
}

-- run drives every operation through one module and returns its lines.
local function run(mod, name)
  local prefix = "plmc:" .. name .. ":" .. ngx.now() .. ":"
  local function K(s) return prefix .. s end
  local ctx = {}
  local lines = {}
  local m = connect(mod)
  for i, op in ipairs(ops) do
    local ok, out = pcall(function() return dumpall(op[2](m, K, mod, ctx)) end)
    if not ok then out = "raised: " .. tostring(out):gsub("^.-:%d+: ", "") end
    -- keys differ per run only by their prefix
    lines[i] = (out:gsub(prefix:gsub("%p", "%%%0"), "K:"))
  end
  m:close()
  return lines
end

describe("nginx.memcached (pure Lua over ngx.socket.tcp) and resty.memcached agree", function()
  if not have_purelua then
    pending("lua-nginx-memcached is not installed (" .. tostring(purelua) .. ")")
    return
  end

  local results
  local function both()
    if not results then
      results = { native = run(native, "native"), purelua = run(purelua, "purelua") }
    end
    return results
  end

  for i, op in ipairs(ops) do
    it(op[1], function()
      local r = both()
      assert.are.equal(r.purelua[i], r.native[i], "resty.memcached differs from the original library")
      if op[3] then
        assert.are.equal(op[3], r.purelua[i])
      end
    end)
  end
end)
