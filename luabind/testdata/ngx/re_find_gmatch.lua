local ngxt = require "ngxt"
local qs, dump, E = ngxt.qs, ngxt.dump, ngxt.E
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
