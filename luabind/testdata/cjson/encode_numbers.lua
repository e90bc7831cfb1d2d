-- Number formatting: %.14g (and encode_number_precision), integers, -0,
-- huge and tiny values, invalid numbers in every mode.
local cjson = require "cjson"
local zero = 0
local nums = {0, -zero, 1, -1, 0.1, 0.5, 1/3, -2/3, 100, 1e14, 1e15, 1e16, 123456789012345,
  12345678901234, 2^31, 2^32, 2^52, 2^53, 2^63, 2^64, -2^63, 1e-4, 1e-5, 1.5e-7, 3.14159265358979,
  1e300, 1e308, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, 0.1 + 0.2, 1e21, 1e22,
  123.456, -123.456e10, 99999999999999.5, 999999999999999, 9.9999999999999e14, 0.000123456789012345}
for _, n in ipairs(nums) do
  print(cjson.encode(n), cjson.encode({n}))
end
-- a deterministic pseudo-random sweep across magnitudes
local seed = 12345
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed
end
for i = 1, 300 do
  -- scaled by exact powers of two: pow() itself differs between VMs
  local m = rnd() / 2147483648
  local e = rnd() % 260 - 130
  local x = m * 2 ^ e
  if i % 3 == 0 then x = -x end
  if i % 7 == 0 then x = math.floor(x) end
  print(cjson.encode(x))
end
for i = 1, 100 do
  local s = string.format("%d.%de%d", rnd() % 1000, rnd(), rnd() % 60 - 30)
  print(s, cjson.encode(tonumber(s)), cjson.encode(cjson.decode(s)))
end
for p = 1, 14 do
  cjson.encode_number_precision(p)
  print(p, cjson.encode({1/3, 2/3, 123456.789, 1e20, 0.00012345, 100, 1e-10}))
end
cjson.encode_number_precision(14)
print(pcall(cjson.encode, 0/0))
print(pcall(cjson.encode, 1/0))
print(pcall(cjson.encode, {-1/0}))
print(pcall(cjson.encode, {[1/0] = 1}))
print(cjson.encode_invalid_numbers(true))
print(cjson.encode({0/0, 1/0, -1/0, 1}))
print(cjson.encode({[1/0] = 1}))
print(cjson.encode_invalid_numbers("null"))
print(cjson.encode({0/0, 1/0, -1/0, 1.5}))
print(cjson.encode_invalid_numbers("off"))
print(cjson.encode_invalid_numbers("on"))
print(cjson.encode_invalid_numbers(false))
print(pcall(cjson.encode_invalid_numbers, "maybe"))
print(cjson.encode({[1] = 1, [2] = 2}), cjson.encode({[1.5] = 1}), cjson.encode({[-1] = 2}),
  cjson.encode({[0] = 2}), cjson.encode({[1e20] = 2}), cjson.encode({[2^53] = 1}))
