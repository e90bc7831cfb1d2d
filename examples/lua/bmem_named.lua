-- The document's second route: the same calls on a named bucket. Plain
-- memcached has no buckets, so here the name only keeps the bucket's
-- connection pool apart ("127.0.0.1:11211/sessions"); the keys are shared.
local _M = { _VERSION = "1.0" }
local bmemcached = require "resty.bmemcached"
local cluster = bmemcached.cluster({ host = "127.0.0.1" })
local bucket2 = cluster:bucket({ name = "sessions", timeout = 1000, pool_size = 16, pool_idle = 30 })

function _M.test_b2(key, value)
  local ses = bucket2:session()
  local r = ses:set(key, value)
  r = ses:get(key)
  ses:setkeepalive()
  return r
end

return _M
