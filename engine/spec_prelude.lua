-- The busted-style runner that `luaserve test` runs every spec file under
-- (see engine/spec.go). It runs inside a real request of a real engine, so
-- the whole ngx API is live while a spec runs.
--
-- A spec file is run in two passes, as busted does: loading it runs the
-- describe blocks, which only register tests and hooks; the tests then run
-- one by one, each between the before_each hooks (outer first) and the
-- after_each hooks (inner first). Every outcome goes straight to Go through
-- native.report, so output the spec itself writes with ngx.say, or an
-- ngx.exit that ends the request, cannot corrupt the results.
local native = ...

local type, tostring, pairs, ipairs, select, next = type, tostring, pairs, ipairs, select, next
local pcall, xpcall, error, setmetatable, getmetatable = pcall, xpcall, error, setmetatable, getmetatable
local rawequal, rawget, setfenv = rawequal, rawget, setfenv
local sfind, sformat, sgsub, smatch, sgmatch = string.find, string.format, string.gsub, string.match, string.gmatch
local concat, sort, insert = table.concat, table.sort, table.insert

local PRELUDE = debug.getinfo(1, "S").source

-- where returns "file:line" of the innermost frame that belongs to the
-- spec (or a module it calls), skipping this prelude, Go functions and the
-- runner's chunk, so a failed assertion points at the line that made it.
-- nil (after a tail call dropped the spec's frame) lets the caller fall
-- back to the test's own line.
local function where()
  for level = 2, 64 do
    local info = debug.getinfo(level, "Sl")
    if not info then
      return nil
    end
    if info.source ~= PRELUDE and info.what ~= "G" and info.what ~= "C" and (info.currentline or 0) > 0
      and not sfind(info.source, "^content_by_lua%(nginx%.conf:") then
      return info.source .. ":" .. info.currentline
    end
  end
  return nil
end

-- format renders a value for a failure message: strings quoted so "1" and
-- 1 differ, tables expanded a few levels deep with sorted keys.
local format

local function keystr(k)
  if type(k) == "string" and smatch(k, "^[%a_][%w_]*$") then
    return k
  end
  return "[" .. format(k, 0) .. "]"
end

format = function(v, depth)
  local t = type(v)
  if t == "string" then
    return sformat("%q", v)
  elseif t ~= "table" then
    if v == ngx.null then
      return "ngx.null"
    end
    return tostring(v)
  end
  depth = depth or 3
  if depth <= 0 then
    return "{...}"
  end
  local mt = getmetatable(v)
  if mt and mt.__tostring then
    return tostring(v)
  end
  local parts, n = {}, #v
  for i = 1, n do
    parts[#parts + 1] = format(v[i], depth - 1)
  end
  local keys = {}
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then
      keys[#keys + 1] = k
    end
  end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then
      return ta < tb
    end
    if ta == "number" or ta == "string" then
      return a < b
    end
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = keystr(k) .. " = " .. format(v[k], depth - 1)
  end
  if #parts > 24 then
    local cut = #parts - 20
    for i = #parts, 21, -1 do
      parts[i] = nil
    end
    parts[#parts + 1] = "... (" .. cut .. " more)"
  end
  return "{" .. concat(parts, ", ") .. "}"
end

-- deepsame compares like luassert's same: tables by content (metatables
-- ignored), everything else with ==. It returns false and the path of the
-- first difference.
local function deepsame(a, b, path, seen)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a == b then
      return true
    end
    return false, path
  end
  if rawequal(a, b) then
    return true
  end
  seen = seen or {}
  if seen[a] == b then
    return true
  end
  seen[a] = b
  for k, va in pairs(a) do
    local ok, p = deepsame(va, b[k], path .. "[" .. format(k, 0) .. "]", seen)
    if not ok then
      return false, p
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false, path .. "[" .. format(k, 0) .. "]"
    end
  end
  return true
end

-- Assertions: each returns ok, the failure message, and the message of the
-- negated form. arity is where a custom message argument may follow.
local assertions = {}

local function register(names, arity, fn)
  for name in sgmatch(names, "%S+") do
    assertions[name] = { arity = arity, fn = fn }
  end
end

register("equal equals", 2, function(expected, actual)
  return expected == actual, "expected " .. format(expected) .. ", got " .. format(actual),
    "expected a value different from " .. format(expected)
end)

register("same", 2, function(expected, actual)
  local ok, path = deepsame(expected, actual, "")
  local msg = "expected " .. format(expected) .. ", got " .. format(actual)
  if not ok and path ~= "" then
    msg = msg .. " (first difference at " .. path .. ")"
  end
  return ok, msg, "expected a value not the same as " .. format(expected)
end)

register("truthy", 1, function(v)
  return v ~= nil and v ~= false, "expected a truthy value, got " .. format(v), "expected a falsy value, got " .. format(v)
end)

register("falsy", 1, function(v)
  return v == nil or v == false, "expected a falsy value, got " .. format(v), "expected a truthy value, got " .. format(v)
end)

for _, lit in ipairs({ "true", "false", "nil" }) do
  register(lit, 1, function(v)
    return tostring(v) == lit and type(v) ~= "string", "expected " .. lit .. ", got " .. format(v),
      "expected a value other than " .. lit
  end)
end

for _, tname in ipairs({ "boolean", "number", "string", "table", "function", "userdata", "thread" }) do
  register(tname, 1, function(v)
    return type(v) == tname, "expected a " .. tname .. ", got " .. format(v) .. " (a " .. type(v) .. ")",
      "expected a value that is not a " .. tname .. ", got " .. format(v)
  end)
end

register("matches match", 4, function(pattern, s, init, plain)
  if type(s) == "number" then
    s = tostring(s)
  end
  local ok = type(s) == "string" and sfind(s, pattern, init, plain) ~= nil
  return ok, "expected " .. format(s) .. " to match pattern " .. format(pattern),
    "expected " .. format(s) .. " not to match pattern " .. format(pattern)
end)

register("near", 3, function(expected, actual, tolerance)
  local ok = type(actual) == "number" and actual >= expected - tolerance and actual <= expected + tolerance
  return ok, "expected " .. format(expected) .. " +/- " .. format(tolerance) .. ", got " .. format(actual),
    "expected a value outside " .. format(expected) .. " +/- " .. format(tolerance) .. ", got " .. format(actual)
end)

-- callerr runs fn and returns whether it raised, and the error with the
-- "file:line: " prefix removed, as luassert compares it.
local function callerr(fn)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("has_error expects a function, got " .. format(fn), 0)
  end
  local ok, err = pcall(fn)
  if type(err) == "string" then
    err = sgsub(err, "^.-:%d+: ", "", 1)
  end
  return not ok, err
end

register("error errors", 2, function(fn, expected)
  local raised, err = callerr(fn)
  if not raised then
    return false, "expected an error, got none", "expected no error"
  end
  local neg = "expected no error, got " .. format(err)
  if expected == nil then
    return true, "", neg
  end
  local ok
  if type(expected) == "table" then
    ok = deepsame(expected, err, "")
  else
    ok = tostring(expected) == tostring(err) and (type(err) == "string" or type(err) == "number")
  end
  return ok, "expected error " .. format(expected) .. ", got " .. format(err), neg
end)

register("error_matches error_match matches_error match_error", 4, function(fn, pattern, init, plain)
  local raised, err = callerr(fn)
  if not raised then
    return false, "expected an error matching " .. format(pattern) .. ", got none", "expected no error"
  end
  local ok = type(err) == "string" and sfind(err, pattern, init, plain) ~= nil
  return ok, "expected an error matching " .. format(pattern) .. ", got " .. format(err),
    "expected no error matching " .. format(pattern) .. ", got " .. format(err)
end)

-- The words luassert lets a chain carry: they read well and mean nothing.
local noise = { is = true, are = true, was = true, has = true, have = true, does = true, ["do"] = true, be = true, to = true }
local negators = { ["not"] = true, no = true }

local current_failure -- the message of the last assertion that failed

local function fail(msg)
  local at = where()
  if at then
    msg = at .. ": " .. msg
  end
  current_failure = msg
  error(msg, 0)
end

local chain_mt = {}

local function chain(neg, name)
  return setmetatable({ neg = neg, name = name }, chain_mt)
end

-- extend adds the words of key ("is_not_equal") to a chain.
local function extend(c, key)
  local words = {}
  for w in sgmatch(key, "[^_]+") do
    words[#words + 1] = w:lower()
  end
  local neg, name = rawget(c, "neg"), rawget(c, "name")
  local i = 1
  while i <= #words do
    local w = words[i]
    local pair = words[i + 1] and (w .. "_" .. words[i + 1])
    if pair and assertions[pair] and not name then
      name, i = pair, i + 2
    elseif assertions[w] and not name then
      name, i = w, i + 1
    elseif negators[w] then
      neg, i = not neg, i + 1
    elseif noise[w] then
      i = i + 1
    else
      local at = where()
      error((at and at .. ": " or "") .. "luassert: unknown assertion or modifier '" .. key .. "'", 0)
    end
  end
  return chain(neg, name)
end

-- No tail calls here or below: a tail call drops the spec's frame, and
-- where() could no longer find the line that misused the chain.
chain_mt.__index = function(c, key)
  local next_ = extend(c, key)
  return next_
end

chain_mt.__call = function(c, ...)
  local name = rawget(c, "name")
  if not name then
    error("luassert: no assertion named in this chain", 2)
  end
  local a = assertions[name]
  local ok, msg, negmsg = a.fn(...)
  if rawget(c, "neg") then
    ok, msg = not ok, negmsg
  end
  if not ok then
    local custom = select(a.arity + 1, ...)
    if custom ~= nil then
      msg = tostring(custom) .. "\n" .. msg
    end
    fail(msg)
  end
  return ...
end

-- assert is also Lua's assert: assert(v, msg) returns its arguments.
local assert = setmetatable({}, {
  __index = function(_, key)
    local c = extend(chain(false, nil), key)
    return c
  end,
  __call = function(_, v, msg, ...)
    if not v then
      fail(msg ~= nil and tostring(msg) or "assertion failed!")
    end
    return v, msg, ...
  end,
})

local M = {}

-- The tree of one spec file.
local function new_block(name, parent, at)
  return {
    kind = "describe", name = name, parent = parent, at = at,
    children = {}, before = {}, after = {}, setup = {}, teardown = {},
  }
end

local function fullname(block, name)
  local parts = { name }
  while block and block.parent do
    insert(parts, 1, block.name)
    block = block.parent
  end
  return concat(parts, " ")
end

-- clean_traceback keeps the frames of the spec and the code it called:
-- the prelude's and the runner chunk's own frames are noise.
local function clean_traceback(tb)
  local out = {}
  for line in sgmatch(tb, "[^\n]+") do
    if not sfind(line, PRELUDE, 1, true) and not sfind(line, "[G]: ?", 1, true)
      and not sfind(line, "in function 'xpcall'", 1, true)
      and not smatch(line, "^%s*content_by_lua%(nginx%.conf:%d+%)") then
      out[#out + 1] = sgsub(line, "in function <([^>]-):0>", "in main chunk")
    end
  end
  return concat(out, "\n")
end

-- pending_marker is raised by pending() inside a running test.
local pending_marker = setmetatable({}, { __tostring = function() return "pending" end })

local function handler(e)
  if e == pending_marker then
    return { kind = "pending" }
  end
  if type(e) == "string" and e == current_failure then
    return { kind = "fail", msg = e }
  end
  local msg
  if type(e) == "string" then
    msg = e
  elseif type(e) == "table" and getmetatable(e) and getmetatable(e).__tostring then
    msg = tostring(e)
  else
    msg = "error object: " .. format(e)
  end
  -- Where it was raised, for messages that carry no position.
  return { kind = "error", msg = msg, at = where(), traceback = clean_traceback(debug.traceback("", 2)) }
end

-- call runs one hook or test body; nil means it passed.
local function call(fn)
  local ok, res = xpcall(fn, handler)
  if ok then
    return nil
  end
  if type(res) ~= "table" then
    -- The handler itself failed (or was bypassed): keep what we got.
    return { kind = "error", msg = tostring(res), traceback = "" }
  end
  return res
end

local function has_tests(block)
  for _, c in ipairs(block.children) do
    if c.kind ~= "describe" or has_tests(c) then
      return true
    end
  end
  return false
end

-- A failure without a position (error("x", 0), error tables) gets the
-- position of the test that raised it, so every failure has a file:line.
local function positioned(msg, at)
  if smatch(msg, "^[^\n]-:%d+: ") then
    return msg
  end
  return at .. ": " .. msg
end

local function report(token, kind, name, at, res)
  local msg = res and res.msg and positioned(res.msg, res.at or at) or ""
  native.report(token, kind, name, at, msg, res and res.traceback or "")
end

local finallies

local function run_test(token, block, test)
  -- Go remembers the running test, to name it if the request dies.
  native.report(token, "running", fullname(block, test.name), test.at, "", "")
  current_failure = nil
  finallies = {}
  local chain_ = {}
  local b = block
  while b do
    insert(chain_, 1, b)
    b = b.parent
  end
  local res
  for _, blk in ipairs(chain_) do
    for _, f in ipairs(blk.before) do
      res = res or call(f)
    end
  end
  if not res then
    res = call(test.fn)
  end
  for i = #chain_, 1, -1 do
    for _, f in ipairs(chain_[i].after) do
      res = res or call(f)
    end
  end
  local fs = finallies
  finallies = nil
  for i = #fs, 1, -1 do
    res = res or call(fs[i])
  end
  report(token, res and res.kind or "pass", fullname(block, test.name), test.at, res)
end

local function fail_subtree(token, block, res)
  for _, c in ipairs(block.children) do
    if c.kind == "describe" then
      fail_subtree(token, c, res)
    elseif c.kind == "pending" then
      report(token, "pending", fullname(block, c.name), c.at)
    else
      report(token, res.kind, fullname(block, c.name), c.at, res)
    end
  end
end

local function run_block(token, block)
  if not has_tests(block) then
    return
  end
  current_failure = nil
  local res
  for _, f in ipairs(block.setup) do
    res = res or call(f)
  end
  if res then
    fail_subtree(token, block, res)
  else
    for _, c in ipairs(block.children) do
      if c.kind == "describe" then
        run_block(token, c)
      elseif c.kind == "pending" then
        report(token, "pending", fullname(block, c.name), c.at)
      elseif c.kind == "broken" then
        report(token, c.res.kind, fullname(block, c.name), c.at, c.res)
      else
        run_test(token, block, c)
      end
    end
  end
  for _, f in ipairs(block.teardown) do
    local r = call(f)
    if r then
      report(token, r.kind, fullname(block, "teardown"), block.at, r)
    end
  end
end

-- spec_env builds the globals one spec file sees: the busted API over the
-- request's globals, fresh per file so files do not leak into each other.
local function spec_env(root, file)
  local current = root
  local env = {}

  local function check_fn(what, fn)
    if type(fn) ~= "function" then
      local at = where()
      error((at and at .. ": " or "") .. what .. " expects a function, got " .. format(fn), 0)
    end
  end

  local function describe(name, fn)
    check_fn("describe", fn)
    local block = new_block(tostring(name), current, where() or file)
    insert(current.children, block)
    local saved = current
    current = block
    local res = call(fn)
    current = saved
    if res then
      -- Tests the body did register may depend on what failed after them.
      block.children = { { kind = "broken", name = "(describe body)", at = block.at, res = res } }
    end
  end

  local function it(name, fn)
    local at = where() or file
    if fn == nil then
      insert(current.children, { kind = "pending", name = tostring(name), at = at })
      return
    end
    check_fn("it", fn)
    insert(current.children, { kind = "test", name = tostring(name), fn = fn, at = at })
  end

  local function pending(name)
    if finallies then
      -- Inside a running test: it stops here and counts as pending.
      error(pending_marker, 0)
    end
    insert(current.children, { kind = "pending", name = tostring(name or "pending"), at = where() or file })
  end

  local function hook(list)
    return function(fn)
      check_fn("hook", fn)
      insert(current[list], fn)
    end
  end

  -- insulate/expose only matter to busted's own file isolation.
  env.describe, env.context, env.insulate, env.expose = describe, describe, describe, describe
  env.it, env.test, env.spec = it, it, it
  env.pending = pending
  env.before_each, env.after_each = hook("before"), hook("after")
  env.setup, env.lazy_setup, env.strict_setup = hook("setup"), hook("setup"), hook("setup")
  env.teardown, env.lazy_teardown, env.strict_teardown = hook("teardown"), hook("teardown"), hook("teardown")
  env.finally = function(fn)
    if not finallies then
      error("finally can only be called inside a test", 2)
    end
    insert(finallies, fn)
  end
  env.assert = assert
  env.spec_http = native.http
  env.SPEC_MEMCACHED_HOST = native.memcached_host
  env.SPEC_MEMCACHED_PORT = native.memcached_port
  env.SPEC_FILE = file
  return setmetatable(env, { __index = _G })
end

-- run runs the spec file the Go runner registered under token. Modules the
-- spec required are unloaded afterwards (busted's insulation), so the next
-- file starts from the same package.loaded.
function M.run(token)
  local fn, file, err = native.load(token)
  if not fn then
    native.report(token, "error", "(loading)", file, positioned(err, file), "")
    native.report(token, "done", "", "", "", "")
    return
  end
  local loaded = {}
  for k in pairs(package.loaded) do
    loaded[k] = true
  end
  local root = new_block("", nil, file)
  setfenv(fn, spec_env(root, file))
  local res = call(fn)
  if res then
    report(token, res.kind, "(file body)", file, res)
  end
  run_block(token, root)
  for k in pairs(package.loaded) do
    if not loaded[k] then
      package.loaded[k] = nil
    end
  end
  native.report(token, "done", "", "", "", "")
end

M.format = format
M.deepsame = deepsame

return M
