-- Pseudo-random token soup: every input must decode, or fail, exactly as
-- lua-cjson does. Park-Miller keeps the generator exact in doubles.
local cjson = require "cjson"
cjson.encode_invalid_numbers(true)
local seed = 20240601
local function rnd(n)
  seed = (seed * 16807) % 2147483647
  return seed % n
end
local pieces = {"{", "}", "[", "]", ":", ",", '"', '"a"', '"k"', "\\", "\\u", "d83d", "de00", "00e9",
  "0", "1", "9", "-", "+", ".", "e", "E", "x", "0x", "1.5", "-0", "12e3", "true", "false", "null",
  "nan", "inf", "Infinity", "n", "t", "f", " ", "\t", "\n", "\0", "\1", "\200", "é", "/", "\\n", "\\/"}
local function dump(v)
  if type(v) ~= "table" then
    if v == cjson.null then return "null" end
    if type(v) == "string" then return (("%q"):format("x") and '"' .. v:gsub("[%c\128-\255\"\\]", function(c) return "\\" .. c:byte() end) .. '"') end
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
  for _, k in ipairs(keys) do out[#out + 1] = dump(k) .. "=" .. dump(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end
local function show(s)
  return (s:gsub("[%c\128-\255]", function(c) return "\\" .. c:byte() end))
end
for i = 1, 3000 do
  local parts = {}
  -- bias towards well-formed starts so deeper paths are reached
  if rnd(3) == 0 then parts[1] = "[" elseif rnd(2) == 0 then parts[1] = '{"k":' end
  for j = 1, rnd(12) + 1 do parts[#parts + 1] = pieces[rnd(#pieces) + 1] end
  local s = table.concat(parts)
  local ok, v = pcall(cjson.decode, s)
  print(show(s), ok, ok and dump(v) or v)
end
-- Well-formed documents, then the same with one byte deleted, replaced or
-- inserted, so that errors also come from deep inside valid structure.
local escapes = {"\\n", "\\\"", "\\\\", "\\/", "\\u00e9", "\\u20AC", "\\ud83d\\ude00", "\\u0000", "\\t", "a", "Z", "é", " "}
local numbers = {"0", "-0", "1", "-12", "3.25", "1e5", "-2.5E-3", "123456789012", "0.1", "1e308", "7"}
local function gen(depth)
  local r = rnd(depth > 3 and 5 or 7)
  if r == 0 then return numbers[rnd(#numbers) + 1] end
  if r == 1 then
    local t = {'"'}
    for i = 1, rnd(5) do t[#t + 1] = escapes[rnd(#escapes) + 1] end
    t[#t + 1] = '"'
    return table.concat(t)
  end
  if r == 2 then return ({"true", "false", "null"})[rnd(3) + 1] end
  if r == 3 or r == 4 then return '"s' .. rnd(100) .. '"' end
  local ws = ({"", " ", "\n\t"})[rnd(3) + 1]
  local items = {}
  if r == 5 then
    for i = 1, rnd(4) do items[i] = ws .. gen(depth + 1) .. ws end
    return "[" .. table.concat(items, ",") .. "]"
  end
  -- one key only, so the dump is order-independent anyway
  if rnd(2) == 0 then return "{}" end
  return "{" .. ws .. '"k' .. rnd(10) .. '"' .. ws .. ":" .. ws .. gen(depth + 1) .. "}"
end
local noise = {"", "x", ",", "]", "}", "\\", '"', "0", "-", " ", "\0", "{", "[", ":", "e", "."}
for i = 1, 1500 do
  local s = gen(0)
  local mode = rnd(4)
  if mode > 0 and #s > 0 then
    local at = rnd(#s) + 1
    local c = noise[rnd(#noise) + 1]
    if mode == 1 then s = s:sub(1, at - 1) .. s:sub(at + 1)
    elseif mode == 2 then s = s:sub(1, at - 1) .. c .. s:sub(at + 1)
    else s = s:sub(1, at - 1) .. c .. s:sub(at) end
  end
  local ok, v = pcall(cjson.decode, s)
  print(show(s), ok, ok and dump(v) or v)
end
