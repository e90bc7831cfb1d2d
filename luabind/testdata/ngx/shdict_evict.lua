-- "mid" is 100k: overfill it with 1000-byte values
local d = ngx.shared.mid
local big = string.rep("x", 1000)
local forced, stored = 0, 0
for i = 1, 300 do
  local ok, err, forcible = d:set("k" .. i, big)
  if ok then stored = stored + 1 end
  if forcible then forced = forced + 1 end
end
ngx.say(stored, " ", forced > 0)
ngx.say(d:get("k300") == big, " ", d:get("k1"))
local ok, err, forcible = d:safe_set("another", big)
ngx.say(ok, " ", err, " ", forcible)
ok, err = d:safe_add("another2", big)
ngx.say(ok, " ", err)
ok, err, forcible = d:set("huge", string.rep("y", 200000))
ngx.say(ok, " ", err)
ngx.say(d:free_space() < d:capacity())
d:flush_all()
d:flush_expired()
ngx.say(d:free_space() > 0)
ok, err, forcible = d:safe_set("another", big)
ngx.say(ok, " ", err, " ", forcible)
