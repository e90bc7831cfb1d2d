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
  ngx.say(qs(re), " ", m and dump(m) or "nil", " ", tostring(err))
end
M("x", "(abc")
M("x", "abc)")
M("x", "[abc")
M("x", "*a")
M("x", "a{2,1}")
M("x", "\\")
M("x", "(?<n>a)(?<n>b)")
M("x", "\\2(a)")
M("x", "[z-a]")
M("x", "(?<=a+)b")
ngx.say(E(pcall(ngx.re.match, "x", "x", "Z")))
ngx.say(E(pcall(ngx.re.match, "x", "x", "iZ")))
ngx.say(E(pcall(ngx.re.match, nil, "x")))
ngx.say(E(pcall(ngx.re.match, "x", nil)))
ngx.say(E(pcall(ngx.re.gmatch, "x", "(")))
local from, to, err = ngx.re.find("x", "(")
ngx.say(tostring(from), " ", tostring(to), " ", err)
local r, n, e = ngx.re.gsub("x", "(", "y")
ngx.say(tostring(r), " ", tostring(n), " ", e)
local it, e2 = ngx.re.gmatch("x", "(")
ngx.say(tostring(it), " ", e2)
