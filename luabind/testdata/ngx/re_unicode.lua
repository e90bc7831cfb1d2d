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
local function M(s, re, opts)
  local m, err = ngx.re.match(s, re, opts)
  ngx.say(qs(re), " ", opts or "", " ", m and dump(m) or "nil", " ", tostring(err))
end
M("ÀÉÎ àéî", "àéî", "i")
M("ÀÉÎ àéî", "àéî", "iu")
M("ÀÉÎ", "àéî", "iu")
M("Straße", "strasse", "iu")
M("k", "\\x{212a}", "iu")
M("K", "k", "iu")
M("日本", "\\w+", "u")
M("日本", "[^a]+", "u")
M("日本", "[^a]", "")
M("naïve", "\\bna.ve\\b", "u")
M("café!", "\\w+\\b", "u")
M("é", "\\xc3\\xa9")
M("é", "\\xc3\\xa9", "u")
M("ü", "[ü]", "")
M("ü", "[ü]", "u")
M("aü", "a.", "")
M("a€b", "a(.)b", "u")
M("a€b", "a(...)b", "")
local it = ngx.re.gmatch("añb", ".", "u")
local out = {}
while true do local m = it() if not m then break end out[#out + 1] = m[0] end
ngx.say(table.concat(out, "|"))
ngx.say(ngx.re.find("añb", "b", "u"))
ngx.say(ngx.re.gsub("añb", "ñ", "n", "u"))
ngx.say(ngx.re.gsub("añb", ".", "[$0]", "u"))
ngx.say(ngx.re.gsub("añb", ".", "[$0]"))
