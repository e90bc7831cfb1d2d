-- GET /routes/time — a route written as its own file. Edit it while
-- luaserve runs: the next request runs the new code.
local hits = ngx.shared.hits
local n = hits:incr("time", 1, 0)
ngx.header.content_type = "application/json"
ngx.say(require("cjson").encode({ now = ngx.http_time(ngx.time()), hits = n }))
