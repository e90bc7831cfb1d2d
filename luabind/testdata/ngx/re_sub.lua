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
local function S(s, re, rep, opts)
  local r, n, err = ngx.re.sub(s, re, rep, opts)
  local gr, gn, gerr = ngx.re.gsub(s, re, rep, opts)
  ngx.say(qs(re), " ", type(rep) == "string" and qs(rep) or type(rep), " sub=", r and qs(r) or "nil", " ", tostring(n), " ", tostring(err),
    " gsub=", gr and qs(gr) or "nil", " ", tostring(gn), " ", tostring(gerr))
end
S("hello, world", "o", "0")
S("hello, world", "([a-z]+)", "[$1]")
S("hello, world", "([a-z]+)", "[${1}]")
S("hello, world", "([a-z]+)", "<$0>")
S("hello, world", "[a-z]+", "$$")
S("hello, world", "([a-z])([a-z]+)", "$2$1")
S("hello, world", "([a-z])([a-z]+)", "$21")
S("hello, world", "([a-z])([a-z]+)", "${2}1")
S("hello, world", "([a-z]+)", "$9")
S("hello, world", "(x)?([a-z]+)", "[$1]")
S("hello, world", "x", "y")
S("abc", "x*", "-")
S("abc", "", "-")
S("abc", "b*", "-")
S("héllo", "", "-", "u")
S("aaa", "a", "b", "a")
S("baaa", "a", "b", "a")
S("", "x*", "-")
S("hello", "l", "$")
S("hello", "l", "$x")
S("hello", "(?<n>l)", "${n}")
S("hello", "l", "${1")
S("hello", "l", "${}")
S("hello", "(l)", 5)
S("a.b.c", "\\.", "\\")
S("hello, world", "(?<w>[a-z]+)", function(m) return m.w:upper() .. m[0]:len() end)
S("hello, world", "[a-z]+", function(m) return #m[0] end)
S("hello, world", "(x)?([a-z]+)", function(m) return tostring(m[1]) end)
S("a1b2", "\\d", function(m) return ngx.re.gsub(m[0], "\\d", "<$0>") end)
ngx.say(E(pcall(ngx.re.gsub, "abc", "b", function() return nil end)))
ngx.say(E(pcall(ngx.re.gsub, "abc", "b", function() return true end)))
ngx.say(E(pcall(ngx.re.gsub, "abc", "b", false)))
ngx.say(E(pcall(ngx.re.gsub, "abc", "b")))
