-- example.lua
local _M = { _VERSION = "1.0" }
local bmemcached = require "resty.bmemcached"
local cluster = bmemcached.cluster({ host = "127.0.0.1" })
local bucket1 = cluster:bucket()

function _M.test_b1(key, value)
  local ses = bucket1:session()
  local r = ses:set(key, value)
  r = ses:get(key)
  ses:setkeepalive()
  return r
end

return _M
