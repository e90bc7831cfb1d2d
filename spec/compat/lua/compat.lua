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

-- quote escapes by hand: string.format("%q") itself differs between the
-- two VMs (say.conf's format-q case shows how).
local function quote(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    return string.format("\\%d", c:byte())
  end) .. '"'
end
_M.quote = quote

-- number formats like LuaJIT's tostring without calling it: gopher-lua's
-- tostring formats numbers its own way (say.conf's tostring and concat
-- cases keep that visible), which would otherwise mask every other area.
local function number(v)
  if v ~= v then return "nan" end
  if v == 1 / 0 then return "inf" end
  if v == -1 / 0 then return "-inf" end
  if v == 0 and 1 / v < 0 then return "-0" end
  return string.format("%.14g", v)
end
_M.number = number

-- dump renders v with sorted keys; strings are quoted, other scalars go
-- through tostring (numbers through number above).
local function dump(v, depth)
  depth = depth or 0
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv == "number" then return number(v) end
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
local function pack(...) return { n = select("#", ...), ... } end

function _M.try(label, f, ...)
  local res = pack(pcall(f, ...))
  if res[1] then
    local out = {}
    for i = 2, res.n do out[#out + 1] = dump(res[i]) end
    ngx.say(label, ": ok ", table.concat(out, " "))
  else
    local msg = tostring(res[2]):gsub("^.-:%d+: ", "", 1)
    ngx.say(label, ": err ", msg)
  end
end

return _M
