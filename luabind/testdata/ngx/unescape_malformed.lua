local function qs(s) return "\"" .. (s:gsub("[^ -~]", function(c) return "\\" .. c:byte() end)) .. "\"" end
local function dump(v)
  local t = type(v)
  if t == "string" then return qs(v) end
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
  for _, k in ipairs(keys) do out[#out + 1] = dump(k) .. "=" .. dump(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end
local function E(ok, e) return ok, (tostring(e):gsub("^.-:%d+: ", "")) end

-- malformed escapes are the part most likely to differ between ports
for _, s in ipairs({"%", "%4", "%zz", "%4z", "%%41", "100%", "a%2", "%%", "%G1", "%1G", "%+", "+%2B+"}) do
  ngx.say(qs(s), " -> ", qs(ngx.unescape_uri(s)))
end
