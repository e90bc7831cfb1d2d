-- Helpers for the OpenResty differential corpus (spec/compat): output that
-- does not depend on the VM's table iteration order, which differs between
-- LuaJIT and gopher-lua and is not part of any contract.
local _M = {}

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end
_M.sorted_keys = sorted_keys

-- dump renders v with sorted keys; strings are %q-quoted, other scalars
-- go through tostring, so the VM's own number formatting shows.
local function dump(v, depth)
  depth = depth or 0
  local tv = type(v)
  if tv == "string" then return string.format("%q", v) end
  if tv ~= "table" then
    if v == ngx.null then return "ngx.null" end
    return tostring(v)
  end
  if depth > 8 then return "{...}" end
  local parts = {}
  for _, k in ipairs(sorted_keys(v)) do
    parts[#parts + 1] = "[" .. dump(k, depth + 1) .. "]=" .. dump(v[k], depth + 1)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
_M.dump = dump

-- say prints each argument dumped, tab-separated, on one line.
function _M.say(...)
  local n = select("#", ...)
  local out = {}
  for i = 1, n do out[i] = dump((select(i, ...))) end
  ngx.say(table.concat(out, "\t"))
end

-- try runs f under pcall and prints "ok" and its results or "err" and the
-- message with the chunk position stripped (positions name the config file,
-- which differs between the two servers).
function _M.try(label, f, ...)
  local res = { pcall(f, ...) }
  local ok = table.remove(res, 1)
  if ok then
    local out = {}
    for i = 1, table.maxn(res) do out[i] = dump(res[i]) end
    ngx.say(label, ": ok ", table.concat(out, " "))
  else
    local msg = tostring(res[1]):gsub("^[^:]*:%d+: ", "")
    ngx.say(label, ": err ", msg)
  end
end

return _M
