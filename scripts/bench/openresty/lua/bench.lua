-- The routes of `make bench` on OpenResty, through lua-resty-memcached
-- (Debian packages it as nginx.memcached). scripts/bench.sh fills in
-- @MEMC_PORT@. Every memcached connection goes back to the worker's
-- keepalive pool.
local _M = { _VERSION = "1.0" }
local memcached = require "nginx.memcached"
local cjson = require "cjson"

local MEMC_PORT = @MEMC_PORT@

local function connect()
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
  return memc
end

-- The seed route: connect, set, get, set_keepalive, and a table comparable to
-- resty.bmemcached's result for cjson.encode.
function _M.test_b1(key, value)
  local memc = connect()
  local ok, err = memc:set(key, value)
  if not ok then
    ngx.log(ngx.ERR, "failed to set: ", err)
    return ngx.exit(500)
  end
  local res, flags, err = memc:get(key)
  if err then
    ngx.log(ngx.ERR, "failed to get: ", err)
    return ngx.exit(500)
  end
  memc:set_keepalive(10000, 100)
  return { value = res, flags = flags }
end

-- The preloaded keys are bench_0 … bench_9999.
function _M.read(k)
  if not k then
    return ngx.exit(400)
  end
  local memc = connect()
  local res, flags, err = memc:get("bench_" .. k)
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
