-- The routes of `make bench` on luaserve. scripts/bench.sh fills in
-- @MEMC_PORT@. Module-level state (cluster, bucket) lives per VM, as it
-- lives per worker in OpenResty.
local _M = { _VERSION = "1.0" }
local bmemcached = require "resty.bmemcached"
local memcached = require "resty.memcached"
local cjson = require "cjson"

local MEMC_PORT = @MEMC_PORT@

-- examples/lua/example.lua with the port of the shared memcached.
local cluster = bmemcached.cluster({ host = "127.0.0.1", port = MEMC_PORT })
local bucket1 = cluster:bucket()

function _M.test_b1(key, value)
  local ses = bucket1:session()
  local r = ses:set(key, value)
  r = ses:get(key)
  ses:setkeepalive()
  return r
end

-- The preloaded keys are bench_0 … bench_9999, stored by scripts/bench.sh
-- through `ceiling -preload`; they hold no character lua-resty-memcached
-- would URI-escape, so every client sees the same keys.
local function read_key(k)
  if not k then
    ngx.exit(400)
  end
  return "bench_" .. k
end

function _M.read_bmem(k)
  local ses = bucket1:session()
  local r = ses:get(read_key(k))
  ses:setkeepalive()
  if r.header.status_code ~= 0 then
    ngx.exit(404)
  end
  ngx.print(r.value)
end

function _M.read_rmc(k)
  local memc, err = memcached:new()
  if not memc then
    ngx.log(ngx.ERR, "failed to instantiate memc: ", err)
    return ngx.exit(500)
  end
  memc:set_timeout(1000)
  local ok, err = memc:connect("127.0.0.1", MEMC_PORT)
  if not ok then
    ngx.log(ngx.ERR, "failed to connect: ", err)
    return ngx.exit(500)
  end
  local res, flags, err = memc:get(read_key(k))
  if err then
    ngx.log(ngx.ERR, "failed to get: ", err)
    return ngx.exit(500)
  end
  memc:set_keepalive(10000, 100)
  if not res then
    return ngx.exit(404)
  end
  ngx.print(res)
end

-- JSON: decode the request body, modify it, encode it back.
function _M.json()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    return ngx.exit(400)
  end
  local doc = cjson.decode(body)
  doc.count = doc.count + 1
  doc.processed = true
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(doc))
end

return _M
