local ngxt = require "ngxt"
local qs, dump, E = ngxt.qs, ngxt.dump, ngxt.E
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
