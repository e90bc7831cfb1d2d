-- Pseudo-random values (single-key objects, arrays, strings, numbers with
-- full 53-bit mantissas) must encode byte for byte as lua-cjson does.
local cjson = require "cjson"
local seed = 777
local function rnd(n)
  seed = (seed * 16807) % 2147483647
  return seed % n
end
local function number()
  local m = rnd(2^26) * 2^27 + rnd(2^27)
  local x = m * 2 ^ (rnd(200) - 150)
  if rnd(2) == 0 then x = -x end
  if rnd(5) == 0 then x = rnd(100000) - 50000 end
  return x
end
local function str()
  local t = {}
  for i = 1, rnd(8) do t[i] = string.char(rnd(256)) end
  return table.concat(t)
end
local function value(depth)
  local r = rnd(depth > 3 and 4 or 7)
  if r == 0 then return number() end
  if r == 1 then return str() end
  if r == 2 then return rnd(2) == 0 end
  if r == 3 then return cjson.null end
  if r == 4 then return {[str()] = value(depth + 1)} end
  local a = {}
  for i = 1, rnd(5) do a[i] = value(depth + 1) end
  return a
end
for i = 1, 2000 do
  print(cjson.encode(number()))
end
for i = 1, 1000 do
  print(cjson.encode(value(0)))
end
for p = 1, 14 do
  cjson.encode_number_precision(p)
  local t = {}
  for i = 1, 40 do t[i] = number() end
  print(p, cjson.encode(t))
end
