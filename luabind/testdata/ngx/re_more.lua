local function qs(s) return "\"" .. (s:gsub("[^ -~]", function(c) return "\\" .. c:byte() end)) .. "\"" end
local function dump(v)
  local t = type(v)
  if t == "string" then return qs(v) end
  if t == "number" then return string.format("%.14g", v) end
  if t ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    return a < b
  end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = dump(k) .. "=" .. dump(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end
local function E(ok, e) return ok, (tostring(e):gsub("^.-:%d+: ", "")) end
local function M(s, re, opts)
  local m, err = ngx.re.match(s, re, opts)
  ngx.say(qs(re), " ", opts or "", " ", m and dump(m) or "nil", " ", tostring(err))
end
-- case folding, classes and anchors
M("ÉCOLE école", "école", "i")
M("ÉCOLE école", "école", "iu")
M("straße", "STRASSE", "i")
M("ABC", "[a-c]+", "i")
M("x\r\ny", "x\\Ry")
M("a\tb", "a\\hb")
M("a b", "a\\Hb")
M("line1\nline2\n", "^line\\d$", "m")
M("line1\nline2\n", "line\\d\\Z")
M("line1\nline2\n", "line\\d\\z")
M("abc", "\\Aabc\\z")
M("foo bar", "\\bbar\\b")
M("foobar", "\\Bbar")
M("123abc", "^\\d+(?=[a-z])")
M("aaa", "(?>a+)a")
M("aaab", "a++b")
M("aaab", "a*+b")
M("xyz", "[^\\d\\s]+")
M("a1 b2", "[\\W\\d]+")
M("tab\tsp ace", "[[:space:]]+")
M("Hello World", "[[:upper:]][[:lower:]]+")
M("0x1F", "0x[[:xdigit:]]+")
M("a_b-c", "[[:word:]]+")
M("a,b;c", "[[:punct:]]")
M("é", "^.$")
M("é", "^.$", "u")
M("é", "^..$")
M("日本語", "(.)", "u")
M("日本語", "\\x{672c}", "u")
M("\0a", "\\0a")
M("\0a", "\\x00a")
M("caf\233", "caf\\xe9")
M("a{b}", "a{b}")
M("a{1}", "a\\{1\\}")
M("aaa", "a{,2}")
M("ab", "a{1,}b")
-- alternation, nesting, lazy
M("foobar", "(foo|foob)(ar|bar)")
M("<<a>>", "<(.+?)>")
M("<<a>>", "<(.+)>")
M("abcabc", "(a(b)(c))+")
M("ab", "(a)|(b)")
M("b", "(a)|(b)")
M("aXbXc", "(?:(\\w)X)*")
-- backreferences and named references
M("abab", "(?<p>ab)(?P=p)")
M("abab", "(ab)\\g1")
M("abab", "(ab)\\g{1}")
M("abab", "(ab)\\g{-1}")
M("abab", "(?<p>ab)\\g{p}")
M("abab", "(?'p'ab)\\k'p'")
M("abab", "(?<p>ab)\\k{p}")
M("aa", "(a)\\1", "i")
M("aA", "(a)\\1", "i")
-- inline flags and conditionals
M("AbC", "(?i)abc")
M("a\nb", "(?s)a.b")
M("a\nb", "(?m)^b")
M("a b", "(?x) a \\  b")
M("ab", "(a)?(?(1)b|c)")
M("c", "(a)?(?(1)b|c)")
M("ab", "(?<q>a)?(?(<q>)b|c)")
-- x flag with classes and comments
M("a b", "a[ ]b", "x")
M("a#b", "a\\#b", "x")
M("ab", "a # comment\n b", "x")
-- J and D
M("ab", "(?<n>a)|(?<n>b)", "J")
M("b", "(?<n>a)|(?<n>b)", "D")
M("a", "(?<n>a)|(?<n>b)", "D")
-- errors
M("x", "a\\")
M("x", "[[:nope:]]")
M("x", "x{3,2}")
M("x", "(?<n")
M("x", "\\k<nope>")
M("x", "(?<=ab|c)x")
M("x", "(?<=a|bc)x")
M("x", "(?<=a(b|cd))x")
M("bx", "(?<=b)x")
M("x", "?")
M("x", "a|*")
M("x", "(?i")
M("x", "[]")
M("]", "[]]")
M("a]", "[^]]")
