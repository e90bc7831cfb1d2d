-- table.new and table.clear as LuaJIT ships them.
local new_tab = require "table.new"
local clear_tab = require "table.clear"
local t = new_tab(10, 5)
print(type(t), #t, next(t))
t[1], t[2], t.x = "a", "b", "c"
print(#t, t.x)
local mt = {__index = function() return "dflt" end}
setmetatable(t, mt)
local same = t
clear_tab(t)
print(same == t, #t, next(t), rawget(t, "x"), t.x, getmetatable(t) == mt)
t[1] = 1
t.y = 2
print(#t, t.y)
print(type(new_tab(0, 0)), type(new_tab(1000000, 0)), type(new_tab(-1, 0)), type(new_tab(1.5, 2.7)))
print(pcall(new_tab, 0, -1))
print(pcall(new_tab, 2^31 - 1, 0))
print(pcall(new_tab, 0, 2^27))
print(pcall(new_tab, 0, "x"))
print(pcall(new_tab))
print(pcall(new_tab, 1))
print(pcall(clear_tab))
print(pcall(clear_tab, 1))
local big = new_tab(0, 100)
for i = 1, 100 do big["k" .. i] = i end
clear_tab(big)
print(next(big))
for i = 1, 3 do big["z" .. i] = i end
local n = 0 for _ in pairs(big) do n = n + 1 end
print(n)
