-- Every decode error message, position included.
local cjson = require "cjson"
local inputs = {
  "", " ", "[", "{", "]", "}", ":", ",", "[1 2]", "[1,]", "[,1]", "{1:2}", '{"a" 2}',
  '{"a":2 3}', '{"a":}', '{"a":1,}', '{,}', "{}x", "[]]", "tru", "nul", "fals", "True",
  "a1", "x", "'a'", '"abc', '"ab\\q"', '"ab\\', '"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"',
  '"\\ud800x"', '"\\u12"', '"\\u12g4"', '"\\uD800\\uDBFF"', "1e", "1.5e", "1e+", "0x", "-",
  "+", "+1", "--1", "-a", ".5", "1.", "-.5", "01", "-01", "00", "0x10", "0X1F", "-0x1.8p1",
  "0x1p", "0x.8", "inf", "-inf", "Infinity", "-Infinity", "infinit", "nan", "-nan", "NaN",
  "nan(12_a)", "nan(", "Nan", "Null", "1e400", "-1e400", "1e-400", "[1e999]",
  " \0 ", "1\0x", "[1]\0garbage", "\0", "a\0", '"a\0b"', "[1,\0]", "1 2", "[\"a\":1]",
  "{\"a\"::1}", "\"\\z\"", "@", "[1,@]", "\239\187\191[]",
}
local function show(s)
  return (s:gsub("[%c\128-\255]", function(c) return "\\" .. c:byte() end))
end
for _, s in ipairs(inputs) do
  local ok, v = pcall(cjson.decode, s)
  if ok and type(v) == "table" then v = "table" end
  if ok and v == cjson.null then v = "null" end
  print(show(s), ok, v)
end
print(pcall(cjson.decode))
print(pcall(cjson.decode, nil))
print(pcall(cjson.decode, {}))
print(pcall(cjson.decode, true))
print(pcall(cjson.decode, "1", "2"))
