local ngxt = require "ngxt"
local qs, dump, E = ngxt.qs, ngxt.dump, ngxt.E

-- malformed escapes are the part most likely to differ between ports
for _, s in ipairs({"%", "%4", "%zz", "%4z", "%%41", "100%", "a%2", "%%", "%G1", "%1G", "%+", "+%2B+"}) do
  ngx.say(qs(s), " -> ", qs(ngx.unescape_uri(s)))
end
