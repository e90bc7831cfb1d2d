local ngxt = require "ngxt"
local qs, dump, E = ngxt.qs, ngxt.dump, ngxt.E

ngx.say(ngx.encode_args({}))
ngx.say(ngx.encode_args({foo = "bar baz"}))
ngx.say(ngx.encode_args({["a b"] = "c&d=e"}))
ngx.say(ngx.encode_args({foo = true}))
ngx.say(ngx.encode_args({foo = false}))
ngx.say(ngx.encode_args({foo = 3.25}))
ngx.say(E(pcall(ngx.encode_args, {[7] = "x"})))
ngx.say(ngx.encode_args({foo = {"a", "b c", 3}}))
ngx.say(ngx.encode_args({foo = {}}))
ngx.say(ngx.encode_args({foo = {true, "x"}}))
ngx.say(ngx.encode_args({foo = ""}))
ngx.say(ngx.encode_args({["é"] = "ü~-._"}))
ngx.say(E(pcall(ngx.encode_args, {foo = ngx.say})))
ngx.say(E(pcall(ngx.encode_args, {[true] = 1})))
ngx.say(E(pcall(ngx.encode_args, "x")) and "" or "error")
for _, s in ipairs({"", "a", "a=", "=b", "a=1&b=2", "a=1&a=2&a=3", "a&a=1", "a=1&a", "&&a=1&&",
    "a%20b=c%20d+e", "a=b=c", "k=%zz", "%61=%62", "a=1&=2&b", "x=%E2%82%AC"}) do
  ngx.say(qs(s), " ", dump(ngx.decode_args(s)))
end
local t, err = ngx.decode_args("a=1&b=2&c=3&d=4", 2)
ngx.say(dump(t), " ", tostring(err))
t, err = ngx.decode_args("a=1&b=2", 2)
ngx.say(dump(t), " ", tostring(err))
t, err = ngx.decode_args("a=1&b=2&c=3", 0)
ngx.say(dump(t), " ", tostring(err))
local many = {}
for i = 1, 150 do many[#many + 1] = "k" .. i .. "=" .. i end
t, err = ngx.decode_args(table.concat(many, "&"))
local n = 0
for _ in pairs(t) do n = n + 1 end
ngx.say(n, " ", tostring(err))
