-- Number parsing follows strtod; decode_invalid_numbers(false) rejects
-- what JSON forbids.
local cjson = require "cjson"
cjson.encode_invalid_numbers(true)
local inputs = {"0", "-0", "1", "1.5", "-1.5", "1e10", "1E10", "1e+10", "1e-10", "0.1",
  "123456789012345678901234567890", "0.000000000000000000001", "4.9e-324", "2.5e-324",
  "1.7976931348623157e308", "1.7976931348623159e308", "3.141592653589793238462643383279",
  "9007199254740993", "0.30000000000000004", "1e-7", "12345.6789e-3"}
for _, s in ipairs(inputs) do
  print(s, cjson.decode(s), cjson.encode(cjson.decode(s)))
end
print(cjson.decode_invalid_numbers())
print(cjson.decode_invalid_numbers(false))
for _, s in ipairs({"0x10", "+1", "01", "-01", "inf", "-inf", "nan", "NaN", "Infinity", "1e400", "-", "-x", "00", "0", "-0", "0.5", "[01]", "[1,nan]"}) do
  print(s, pcall(cjson.decode, s))
end
print(cjson.decode_invalid_numbers("on"))
print(pcall(cjson.decode_invalid_numbers, 1))
print(pcall(cjson.decode_invalid_numbers, true, false))
