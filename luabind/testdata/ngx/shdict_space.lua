-- free space of fresh zones: calibrates luaserve's slab accounting
for _, name in ipairs({"tiny", "space100k", "space1m"}) do
  local d = ngx.shared[name]
  ngx.say(name, " ", d:capacity(), " ", d:free_space())
end
local d = ngx.shared.space1m
local v = string.rep("v", 100)
for i = 1, 1000 do d:set("key" .. i, v) end
ngx.say("after 1000 x 100B: ", d:free_space())
for i = 1, 1000 do d:set("key" .. i, nil) end
ngx.say("after delete: ", d:free_space())
local v2 = string.rep("w", 5000)
for i = 1, 50 do d:set("big" .. i, v2) end
ngx.say("after 50 x 5000B: ", d:free_space())
local n = 0
for i = 1, 100000 do
  local ok, err = d:safe_set("fill" .. i, v)
  if not ok then break end
  n = n + 1
end
ngx.say("100B values that fit: ", n)
