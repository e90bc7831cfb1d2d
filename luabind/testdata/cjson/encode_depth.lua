-- encode_max_depth and the C stack limit behind it.
local cjson = require "cjson"
local function nest_array(n) local a = {} local c = a for i = 1, n - 1 do c[1] = {} c = c[1] end return a end
local function nest_object(n) local a = {} local c = a for i = 1, n - 1 do c.x = {} c = c.x end return a end
print(#cjson.encode(nest_array(1000)))
print(pcall(cjson.encode, nest_array(1001)))
print(#cjson.encode(nest_object(1000)))
print(pcall(cjson.encode, nest_object(1001)))
local self = {} self[1] = self
print(pcall(cjson.encode, self))
print(cjson.encode_max_depth())
print(cjson.encode_max_depth(5))
print(cjson.encode(nest_array(5)))
print(pcall(cjson.encode, nest_array(6)))
print(pcall(cjson.encode, {{{{{{1}}}}}}))
print(pcall(cjson.encode_max_depth, 0))
print(pcall(cjson.encode_max_depth, 1, 2))
print(cjson.encode_max_depth(100000))
print(pcall(cjson.encode, nest_array(20000)))
print(pcall(cjson.encode, nest_object(20000)))
print(#cjson.encode(nest_array(7997)))
print(#cjson.encode(nest_object(3999)))
print(pcall(cjson.encode, {a = nest_array(7990)}))
print(pcall(cjson.encode, {nest_object(3998)}))
print(pcall(cjson.encode, {{nest_object(3998)}}))
print(pcall(cjson.encode, {{{nest_object(3998)}}}))
