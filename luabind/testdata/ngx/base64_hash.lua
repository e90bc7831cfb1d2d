local ngxt = require "ngxt"
local qs, dump, E = ngxt.qs, ngxt.dump, ngxt.E

for _, s in ipairs({"", "f", "fo", "foo", "foob", "fooba", "foobar", "\0\255\254", "hello, world"}) do
  ngx.say(qs(s), " ", ngx.encode_base64(s), " ", ngx.encode_base64(s, true), " ", qs(ngx.decode_base64(ngx.encode_base64(s))))
end
for _, s in ipairs({"Zm9v", "Zm9vYg", "Zm9vYg==", "Zm9vYg=", "Zm9vYg===", "Z", "Zm9vY", "Zm 9v", "Zm9v!", "Zm9-", "Zm9_", "Zm9vYg==Zm9v", "=", "", "Zh==", "Zm9vYmFy\n"}) do
  local d = ngx.decode_base64(s)
  ngx.say(qs(s), " ", d and qs(d) or "nil")
end
ngx.say(ngx.encode_base64(12), " ", ngx.encode_base64(nil))
ngx.say(E(pcall(ngx.encode_base64, "x", 1)))
ngx.say(E(pcall(ngx.decode_base64, nil)))
for _, s in ipairs({"", "a", "abc", "message digest", "The quick brown fox jumps over the lazy dog"}) do
  ngx.say(ngx.md5(s), " ", ngx.encode_base64(ngx.md5_bin(s)), " ", ngx.encode_base64(ngx.sha1_bin(s)),
    " ", ngx.crc32_short(s), " ", ngx.crc32_long(s))
end
ngx.say(ngx.md5(nil), " ", ngx.md5(42))
ngx.say(ngx.encode_base64(ngx.hmac_sha1("key", "The quick brown fox jumps over the lazy dog")))
ngx.say(ngx.encode_base64(ngx.hmac_sha1("", "")))
ngx.say(ngx.encode_base64(ngx.hmac_sha1(string.rep("k", 100), "data")))
for _, s in ipairs({"", "abc", "it's", 'say "hi"', "back\\slash", "nul\0byte", "lines\r\n\ttab", "ctrl-z\26", "bs\8", "\255"}) do
  ngx.say(qs(ngx.quote_sql_str(s)))
end
ngx.say(ngx.quote_sql_str(3.5))
