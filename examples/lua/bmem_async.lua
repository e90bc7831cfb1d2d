-- The document's two async examples as functions of one module.
local _M = { _VERSION = "1.0" }
local bmemcached = require "resty.bmemcached"
local c = require "resty.memcached.consts"
local cluster = bmemcached.cluster({ host = "127.0.0.1" })
local bucket = cluster:bucket()

-- Example 1: send a Set, then receive its response by opaque.
function _M.send_receive()
  local session = bucket:session()
  local w = session:send(c.op_code.Set, {
    key = 88, value = 1234567890, expire = 0
  })
  local l = session:receive(w.peer, {
    opaque = w.header.opaque
  })
  session:setkeepalive()
  return l
end

-- Example 2: SetQ a batch, then collect the failures (only errors come
-- back) per peer and match them to their requests by opaque. Key 77 is
-- sent as an AddQ of an existing key, so there is one failure to show.
function _M.setq(session)
  session = session or bucket:session()
  session:set(77, "exists")
  local batch = {
    { 77, "1234567890", expire = 0 },
    { 88, "1234567890", expire = 0 },
    { 99, "1234567890", expire = 0 }
  }
  local peers = {}
  local opaques = {}
  for i, req in ipairs(batch) do
    local key, value = unpack(req)
    local w = session:send(i == 1 and c.op_code.AddQ or c.op_code.SetQ, {
      key = key, value = value, expire = 0
    })
    local peer, opaque = w.peer, w.header.opaque
    peers[peer] = true
    opaques[opaque] = req
  end
  -- wait responses (only errors)
  local failed = {}
  for peer in pairs(peers) do
    local fails = session:receive(peer)
    for _, fail in ipairs(fails) do
      local header, key, value = fail.header, fail.key, fail.value
      local request = opaques[header.opaque]
      failed[#failed + 1] = {
        header = header, key = key, value = value, request = request
      }
    end
  end
  session:setkeepalive()
  return failed
end

-- The document's batch: 20 Sets, two unacknowledged per connection, four
-- connections working in parallel; every item gets its result.
function _M.batch()
  local session = bucket:session()
  local b = {}
  for i = 1, 20 do
    b[i] = { op = c.op_code.Set, opts = { key = i, value = "1234567890" } }
  end
  session:batch(b, {
    unacked_window = 2,
    thread_pool_size = 4
  })
  session:setkeepalive()
  local out = {}
  for i, item in ipairs(b) do
    out[i] = { key = item.opts.key, status = item.result.header.status }
  end
  return out
end

return _M
