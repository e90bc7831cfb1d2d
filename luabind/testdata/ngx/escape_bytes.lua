-- ngx.escape_uri / ngx.unescape_uri over every byte value
local t = {}
for i = 0, 255 do t[#t + 1] = string.char(i) end
local all = table.concat(t)
ngx.say(ngx.escape_uri(all))
ngx.say(ngx.escape_uri(all, 2))
ngx.say(ngx.escape_uri(all, 0))
for i = 0, 255 do
  local c = string.char(i)
  ngx.say(i, " ", ngx.escape_uri(c), " ", ngx.escape_uri(c, 0), " ", ngx.unescape_uri(c) == c and "same" or ngx.unescape_uri(c))
end
local p = {}
for i = 0, 255 do p[#p + 1] = string.format("%%%02X", i) end
ngx.say(ngx.unescape_uri(table.concat(p)) == all)
p = {}
for i = 0, 255 do p[#p + 1] = string.format("%%%02x", i) end
ngx.say(ngx.unescape_uri(table.concat(p)) == all)
ngx.say(ngx.unescape_uri(ngx.escape_uri(all)) == all)
ngx.say(ngx.unescape_uri(ngx.escape_uri(all, 0)) == all)
ngx.say(ngx.escape_uri(nil), "|", ngx.escape_uri(12), "|", ngx.escape_uri(""))
ngx.say(ngx.unescape_uri("a+b%20c%2Bd"))
