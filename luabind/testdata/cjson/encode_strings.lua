-- String escaping, byte by byte, and strings as keys.
local cjson = require "cjson"
local parts = {}
for b = 0, 255 do
  parts[#parts + 1] = cjson.encode(string.char(b))
end
print(table.concat(parts, " "))
print(cjson.encode(""))
print(cjson.encode("héllo wörld ✓ 😀"))
print(cjson.encode("a/b</script>"))
print(cjson.encode({["k\"ey"] = "v\\al"}))
print(cjson.encode({["\n"] = "\r\n\t"}))
print(cjson.encode(string.rep("ab\"", 50)))
print(cjson.encode("\255\254\192\128 invalid utf8 passes through"))
