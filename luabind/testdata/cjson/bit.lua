-- LuaBitOp as built into LuaJIT.
local bit = require "bit"
local vals = {0, 1, -1, 2^31, -2^31, 2^32, 2^32 + 5, 2^52, 2^53 + 3, 2^64, -2^64, 0.5, 1.5, 2.5,
  -0.5, -1.5, 0.49999999999999994, 1e300, -1e300, 1/0, -1/0, 0/0, 4294967295, 4294967296.6,
  "0x10", "  12  ", "0xffffffff", "1e3", 0x7fffffff, 0x80000000, 12345.678, -12345.678}
for _, v in ipairs(vals) do
  print(v, bit.tobit(v), bit.bnot(v), bit.bswap(v), bit.tohex(v), bit.tohex(v, -4))
end
local seed = 42
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed
end
for i = 1, 60 do
  local a, b = rnd() * 3 - 2^31, rnd() - 2^30
  local n = rnd() % 70 - 3
  print(bit.band(a, b), bit.bor(a, b), bit.bxor(a, b), bit.lshift(a, n), bit.rshift(a, n),
    bit.arshift(a, n), bit.rol(a, n), bit.ror(a, n), bit.band(a, b, n), bit.bxor(a, b, n, 7))
end
for _, n in ipairs({-9, -8, -1, 0, 1, 2, 7, 8, 9, 15, 16, 17, 32, 100, 254, 255, 256, 257, 2^31 - 1, -2^31, 2^31, 2^32 + 3}) do
  print(n, bit.tohex(0x12345678, n), bit.tohex(0, n), bit.tohex(-1, n))
end
print(bit.tohex(1, 10), bit.tohex(1, 0), bit.tohex(-1, -4), #bit.tohex(255, -300), #bit.tohex(1, 300))
print(bit.band(1), bit.bor(5), bit.bxor(3))
print(pcall(bit.band))
print(pcall(bit.tobit))
print(pcall(bit.tobit, nil))
print(pcall(bit.tobit, "x"))
print(pcall(bit.tobit, {}))
print(pcall(bit.lshift, 1))
print(pcall(bit.band, 1, 2, "z"))
print(pcall(bit.tohex, 1, "q"))
for _, s in ipairs({"inf", "-Infinity", "nan", "0x1p4", "0x123456789", "0b101", " 12 ", "\t0x10\n", "0x1.8",
  "1e", "+5", "- 5", "0x", "infx", "1.5e1", "+-5", ".5", "5.", "0b", "0b102", "1_0", ""}) do
  print("[" .. s:gsub("%c", function(c) return "\\" .. c:byte() end) .. "]", pcall(bit.tobit, s))
end
