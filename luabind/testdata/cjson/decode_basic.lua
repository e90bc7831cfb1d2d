-- Decoding values; structures are printed by a sorted dump.
local cjson = require "cjson"
local function dump(v)
  if type(v) ~= "table" then
    if v == cjson.null then return "null" end
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) == "number" then return cjson.encode(v) end
    return tostring(v)
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) < type(b)
  end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = "[" .. dump(k) .. "]=" .. dump(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end
local inputs = {
  '[1,2,3]', '{"a":1,"b":[true,false,null],"c":{"d":"e"}}', '""', '"abc"', '  123  ',
  '[]', '{}', '[[],{}]', 'true', 'false', 'null', '[null,null]', '{"a":null}',
  '{"a":1,"a":2}', '{"1":"one","2":"two"}', '\t\r\n[ 1 , 2 ]\n',
  '[1e2, -1E-2, 0.5, -0, 0, 1.0, 123456789012345678]',
  '{"nested":{"deep":{"deeper":[1,[2,[3,[4]]]]}}}',
}
for _, s in ipairs(inputs) do
  print(s, dump(cjson.decode(s)))
end
print(cjson.decode("null") == cjson.null, type(cjson.null), tostring(cjson.null))
print(cjson.decode(12), cjson.decode(1.5))
print(#cjson.decode("[1,2,3,4,5]"))
print(cjson.decode('"\\u00e9\\u20ac\\ud83d\\ude00"'))
print(cjson.decode('"\\"\\\\\\/\\b\\f\\n\\r\\t"') == "\"\\/\b\f\n\r\t")
print(cjson.decode('"\\u0000x"') == "\0x", #cjson.decode('"\\u0000x"'))
print(cjson.decode('"\\uD834\\uDD1E"'))
print(cjson.decode('"raw \1 control \127 bytes"') == "raw \1 control \127 bytes")
print(cjson.decode('"h\195\169llo"'))
print(dump(cjson.decode('[1,"a",{"b":[]}]')))
