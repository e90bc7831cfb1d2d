-- Helpers of the testdata/ngx corpus, for luaserve and OpenResty alike:
-- output that does not depend on table iteration order or on the VM's
-- string quoting.
local _M = {}
function _M.qs(s) return "\"" .. (s:gsub("[^ -~]", function(c) return "\\" .. c:byte() end)) .. "\"" end
function _M.dump(v)
  local t = type(v)
  if t == "string" then return _M.qs(v) end
  if t == "number" then return string.format("%.14g", v) end
  if t ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    return a < b
  end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = _M.dump(k) .. "=" .. _M.dump(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end
function _M.E(ok, e) return ok, (tostring(e):gsub("^.-:%d+: ", "")) end
return _M
