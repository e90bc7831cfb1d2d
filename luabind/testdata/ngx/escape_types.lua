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
local t = {}
for i = 0, 255 do t[#t + 1] = string.char(i) end
local all = table.concat(t)
for typ = 0, 6 do
  ngx.say(typ, " ", ngx.escape_uri(all, typ))
end
ngx.say(E(pcall(ngx.escape_uri, "a", 7)))
ngx.say(E(pcall(ngx.escape_uri, "a", -1)))
ngx.say(E(pcall(ngx.escape_uri, "a", "2")))
ngx.say(ngx.escape_uri("a b", 2.5))
ngx.say(ngx.escape_uri(true), ngx.escape_uri(false))
