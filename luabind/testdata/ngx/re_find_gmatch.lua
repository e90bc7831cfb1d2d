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
local function F(s, re, opts, ctx, nth)
  local from, to, err = ngx.re.find(s, re, opts, ctx, nth)
  ngx.say(qs(re), " ", tostring(from), " ", tostring(to), " ", tostring(err))
end
F("hello, 1234", "[0-9]+")
F("hello, 1234", "([0-9])([0-9]+)", "", nil, 2)
F("hello, 1234", "([0-9])([0-9]+)", "", nil, 1)
F("hello, 1234", "([0-9])([0-9]+)", "", nil, 0)
F("hello, 1234", "(x)?([0-9]+)", "", nil, 1)
F("hello", "[0-9]+")
F("hello", "")
F("hello", "$")
F("héllo", "llo", "u")
F("héllo", "llo")
local ctx = {pos = 5}
F("aaaa aaaa", "a+", "", ctx)
ngx.say(ctx.pos)
local function G(s, re, opts)
  local it, err = ngx.re.gmatch(s, re, opts)
  if not it then ngx.say("gmatch error: ", err) return end
  local out = {}
  for i = 1, 20 do
    local m, e = it()
    if not m then
      if e then out[#out + 1] = "error " .. e end
      break
    end
    out[#out + 1] = dump(m)
  end
  ngx.say(qs(re), " ", table.concat(out, " "))
end
G("hello, world", "[a-z]+")
G("hello, world", "([a-z])[a-z]+")
G("a=1, b=2", "(?<k>\\w)=(?<v>\\d)")
G("abc", "x*")
G("abc", "")
G("abc", "b*")
G("héllo", "", "u")
G("aaa", "a", "a")
G("baaa", "a", "a")
G("", "x*")
G("a1b22c333", "\\d+")
local it = ngx.re.gmatch("ab", "\\w")
ngx.say(dump(it()), dump(it()), tostring(it()), tostring(it()))
local it2 = ngx.re.gmatch("ab", "\\w")
ngx.say(type(it2), " ", it2()[0], " ", it2()[0], " ", tostring(it2()))
