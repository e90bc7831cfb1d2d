package luabind

import (
	"errors"
	"fmt"
	"regexp"
	rsyntax "regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"github.com/dlclark/regexp2/syntax"
	lua "github.com/yuin/gopher-lua"
)

// ngx.re runs on regexp2, whose backtracking matches PCRE's semantics:
// `$` before a final newline, byte-wise matching without the "u" flag,
// back-references, look-around. The PCRE pattern is first translated (see
// pcreTranslator) so regexp2's .NET dialect behaves like PCRE: groups are
// numbered left to right including named ones, \d \w \s \b are ASCII,
// (?P<name>…), POSIX classes and possessive quantifiers are understood.
// Go's regexp serves as a fast path only where it provably agrees (see
// goFastPath and fastOK); everything else, and every subject that is not
// plain ASCII, goes to regexp2.

// reMatchTimeout bounds one match, standing in for PCRE's match limit
// (lua_regex_match_limit): catastrophic backtracking yields an error instead
// of a stuck request.
const reMatchTimeout = 2 * time.Second

// reCacheMax is lua_regex_cache_max_entries' default.
const reCacheMax = 1024

// pcreErrorMatchLimit is PCRE_ERROR_MATCHLIMIT, what OpenResty reports when
// the match limit is hit.
const pcreErrorMatchLimit = -8

// Option bits of a compiled regex, part of its cache key.
const (
	reCaseless uint16 = 1 << iota
	reMultiline
	reDotAll
	reExtended
	reUTF8
	reNoUTF8Check
	reAnchored
	reDupNames
	reJSCompat
	reOnce
	reDFA
)

// reName is one entry of the name table: PCRE sorts it by name, then group.
type reName struct {
	name  string
	group int
	at    int // rune offset of the name's terminator, for error messages
}

// ngxRegex is a compiled pattern. It is immutable and shared by all VMs.
type ngxRegex struct {
	re    *regexp2.Regexp
	ncap  int
	names []reName
	flags uint16
	// goRe is the same pattern on Go's regexp, used when it provably gives
	// the same answer (see goFastPath and fastOK); nil otherwise.
	goRe      *regexp.Regexp
	goLeftCtx bool // the pattern looks left of the start (^, \A)
}

type reCacheKey struct {
	pattern string
	flags   uint16
}

// reCache holds the patterns compiled with the "o" option: a process-wide
// registry shared by every VM, as OpenResty's per-worker cache is shared by
// every request. It stops growing at reCacheMax entries, as OpenResty's does.
var reCache = struct {
	sync.RWMutex
	m map[reCacheKey]*ngxRegex
}{m: make(map[reCacheKey]*ngxRegex)}

// parseReOpts parses the options string; an unknown flag raises, as in
// lua-resty-core.
func parseReOpts(L *lua.LState, opts string) uint16 {
	var f uint16
	for i := 0; i < len(opts); i++ {
		switch opts[i] {
		case 'o':
			f |= reOnce
		case 'j':
		case 'i':
			f |= reCaseless
		case 's':
			f |= reDotAll
		case 'm':
			f |= reMultiline
		case 'u':
			f |= reUTF8
		case 'U':
			f |= reUTF8 | reNoUTF8Check
		case 'x':
			f |= reExtended
		case 'd':
			f |= reDFA
		case 'a':
			f |= reAnchored
		case 'D':
			f |= reDupNames
		case 'J':
			f |= reJSCompat
		default:
			L.RaiseError(`unknown flag "%s" (flags "%s")`, opts[i:i+1], opts)
		}
	}
	return f
}

// reCompile returns the compiled pattern or an OpenResty-shaped error
// message.
func reCompile(pattern string, flags uint16) (*ngxRegex, string) {
	if flags&reDFA != 0 {
		return nil, `pcre_compile() failed: the "d" (DFA) option is not supported by luaserve in "` + pattern + `"`
	}
	key := reCacheKey{pattern, flags &^ reOnce}
	if flags&reOnce != 0 {
		reCache.RLock()
		rx := reCache.m[key]
		reCache.RUnlock()
		if rx != nil {
			return rx, ""
		}
	}
	rx, msg := compileNgxRegex(pattern, flags)
	if rx == nil {
		return nil, msg
	}
	if flags&reOnce != 0 {
		reCache.Lock()
		if len(reCache.m) < reCacheMax {
			reCache.m[key] = rx
		}
		reCache.Unlock()
	}
	return rx, ""
}

func pcreCompileError(msg, pattern string, at int) string {
	if at < 0 || at >= len(pattern) {
		return fmt.Sprintf("pcre_compile() failed: %s in \"%s\"", msg, pattern)
	}
	return fmt.Sprintf("pcre_compile() failed: %s in \"%s\" at \"%s\"", msg, pattern, pattern[at:])
}

// regexp2Messages maps regexp2's parse errors to PCRE's wording where the
// two name the same mistake.
var regexp2Messages = map[syntax.ErrorCode]string{
	syntax.ErrMissingParen:           "missing )",
	syntax.ErrUnexpectedParen:        "unmatched parentheses",
	syntax.ErrUnterminatedBracket:    "missing terminating ] for character class",
	syntax.ErrIllegalEndEscape:       `\ at end of pattern`,
	syntax.ErrInvalidRepeatOp:        "nothing to repeat",
	syntax.ErrMissingRepeatArgument:  "nothing to repeat",
	syntax.ErrReversedCharRange:      "range out of order in character class",
	syntax.ErrInvalidRepeatSize:      "numbers out of order in {} quantifier",
	syntax.ErrUndefinedBackRef:       "reference to non-existent subpattern",
	syntax.ErrCaptureGroupOutOfRange: "reference to non-existent subpattern",
}

func compileNgxRegex(pattern string, flags uint16) (*ngxRegex, string) {
	var src []rune
	if flags&reUTF8 != 0 {
		if !utf8.ValidString(pattern) {
			return nil, pcreCompileError("invalid UTF-8 string", pattern, -1)
		}
		src = []rune(pattern)
	} else {
		src = latin1Runes(nil, pattern)
	}
	t := pcreTranslator{src: src, extendedAtStart: flags&reExtended != 0, dupOK: flags&reDupNames != 0}
	// Pass one numbers the groups and learns their names, so pass two can
	// resolve references to groups that come later in the pattern.
	if !t.run() {
		return nil, pcreCompileError(t.err, pattern, t.errAt)
	}
	t.out.Reset()
	t.pass2 = true
	if !t.run() {
		return nil, pcreCompileError(t.err, pattern, t.errAt)
	}
	names := t.names
	sort.SliceStable(names, func(i, j int) bool { return names[i].name < names[j].name })
	expr := t.out.String()
	if flags&reAnchored != 0 {
		expr = `\G(?:` + expr + `)`
	}
	var opt regexp2.RegexOptions
	if flags&reCaseless != 0 {
		opt |= regexp2.IgnoreCase
	}
	if flags&reMultiline != 0 {
		opt |= regexp2.Multiline
	}
	if flags&reDotAll != 0 {
		opt |= regexp2.Singleline
	}
	re, err := regexp2.Compile(expr, opt)
	if err != nil {
		msg := err.Error()
		var se *syntax.Error
		if errors.As(err, &se) {
			if m, ok := regexp2Messages[se.Code]; ok {
				msg = m
			} else if len(se.Args) > 0 {
				msg = fmt.Sprintf(string(se.Code), se.Args...)
			} else {
				msg = string(se.Code)
			}
		}
		return nil, pcreCompileError(msg, pattern, -1)
	}
	re.MatchTimeout = reMatchTimeout
	rx := &ngxRegex{re: re, ncap: t.ncap, names: names, flags: flags}
	rx.goRe, rx.goLeftCtx = goFastPath(pattern, t.out.String(), flags, t.ncap)
	return rx, ""
}

// reGoUnsafe lists translated constructs Go's regexp lacks or reads
// differently: look-around (also behind \b and \B), atomic groups,
// conditionals, back-references and \G. A false alarm only costs speed.
var reGoUnsafe = []string{"(?=", "(?!", "(?<=", "(?<!", "(?>", "(?(", `\k`, `(?:\`, `\G`, `\Z`}

var reNumberedGroup = regexp.MustCompile(`\(\?<[0-9]+>`)

// reGoRepeatsEmptyCapture reports a repetition whose body can match the
// empty string and holds a capture, like (a*)*: backtracking engines record
// the last, empty iteration, Go's regexp does not.
func reGoRepeatsEmptyCapture(re *rsyntax.Regexp) bool {
	return reGoAny(re, func(re *rsyntax.Regexp) bool {
		switch re.Op {
		case rsyntax.OpStar, rsyntax.OpPlus, rsyntax.OpQuest, rsyntax.OpRepeat:
			return reGoAny(re.Sub[0], func(re *rsyntax.Regexp) bool { return re.Op == rsyntax.OpCapture }) &&
				reGoNullable(re.Sub[0])
		}
		return false
	})
}

// reGoAny reports whether f holds for re or any node below it.
func reGoAny(re *rsyntax.Regexp, f func(*rsyntax.Regexp) bool) bool {
	if f(re) {
		return true
	}
	for _, sub := range re.Sub {
		if reGoAny(sub, f) {
			return true
		}
	}
	return false
}

func reGoNullable(re *rsyntax.Regexp) bool {
	switch re.Op {
	case rsyntax.OpEmptyMatch, rsyntax.OpBeginLine, rsyntax.OpEndLine, rsyntax.OpBeginText, rsyntax.OpEndText,
		rsyntax.OpWordBoundary, rsyntax.OpNoWordBoundary, rsyntax.OpStar, rsyntax.OpQuest:
		return true
	case rsyntax.OpLiteral:
		return len(re.Rune) == 0
	case rsyntax.OpCapture, rsyntax.OpPlus:
		return reGoNullable(re.Sub[0])
	case rsyntax.OpRepeat:
		return re.Min == 0 || reGoNullable(re.Sub[0])
	case rsyntax.OpConcat:
		for _, sub := range re.Sub {
			if !reGoNullable(sub) {
				return false
			}
		}
		return true
	case rsyntax.OpAlternate:
		for _, sub := range re.Sub {
			if reGoNullable(sub) {
				return true
			}
		}
	}
	return false
}

// goFastPath compiles the translated pattern for Go's regexp when that is
// safe: an ASCII pattern without the constructs in reGoUnsafe and without
// the "a" option. Measured on a typical routing pattern, Go's regexp
// matches about four times faster than regexp2.
func goFastPath(pattern, expr string, flags uint16, ncap int) (*regexp.Regexp, bool) {
	if flags&reAnchored != 0 {
		return nil, false
	}
	for i := 0; i < len(pattern); i++ {
		if pattern[i] >= utf8.RuneSelf {
			return nil, false
		}
	}
	for _, u := range reGoUnsafe {
		if strings.Contains(expr, u) {
			return nil, false
		}
	}
	goExpr := reNumberedGroup.ReplaceAllLiteralString(expr, "(")
	var prefix string
	if flags&reCaseless != 0 {
		prefix += "i"
	}
	if flags&reMultiline != 0 {
		prefix += "m"
	}
	if flags&reDotAll != 0 {
		prefix += "s"
	}
	if prefix != "" {
		goExpr = "(?" + prefix + ")" + goExpr
	}
	tree, err := rsyntax.Parse(goExpr, rsyntax.Perl)
	if err != nil || reGoRepeatsEmptyCapture(tree) {
		return nil, false
	}
	re, err := regexp.Compile(goExpr)
	if err != nil || re.NumSubexp() != ncap {
		return nil, false
	}
	return re, strings.Contains(goExpr, "^") || strings.Contains(goExpr, `\A`)
}

// latin1Runes maps each byte to the rune of the same value, so regexp2
// matches byte by byte as PCRE does without the "u" flag.
func latin1Runes(dst []rune, s string) []rune {
	dst = dst[:0]
	for i := 0; i < len(s); i++ {
		dst = append(dst, rune(s[i]))
	}
	return dst
}

// pcreTranslator rewrites a PCRE pattern into regexp2's dialect.
type pcreTranslator struct {
	src      []rune
	extended bool
	// extendedAtStart is the "x" option; (?x) may switch extended later.
	extendedAtStart bool
	dupOK           bool // "D": duplicate names allowed
	pass2           bool
	out             strings.Builder
	ncap            int
	names           []reName
	total           int // groups found by pass one
	open            []openGroup
	err             string
	errAt           int
}

// openGroup is a parenthesis not closed yet.
type openGroup struct {
	lookbehind bool // (?<= or (?<!
	zeroWidth  bool // an assertion: it adds no length to its parent
	variable   bool // lookbehind only: some part is not fixed-length
	outAt      int  // output offset of the opening, for possessive wrapping
	branchLen  int  // length of the current alternative so far; -1 variable
	firstLen   int  // length of the first alternative; noBranch until known
}

const (
	asciiDigit = `0-9`
	asciiWord  = `a-zA-Z0-9_`
	asciiSpace = `\t\n\x0B\f\r `
)

func (t *pcreTranslator) fail(msg string, at int) bool {
	t.err, t.errAt = msg, t.byteOffset(at)
	return false
}

// byteOffset converts a rune index of src back to the pattern's byte offset.
func (t *pcreTranslator) byteOffset(i int) int {
	n := 0
	for _, r := range t.src[:min(i, len(t.src))] {
		if r < utf8.RuneSelf {
			n++
		} else {
			n += utf8.RuneLen(r)
		}
	}
	return n
}

func (t *pcreTranslator) at(i int) rune {
	if i < len(t.src) {
		return t.src[i]
	}
	return -1
}

func (t *pcreTranslator) run() bool {
	if t.pass2 {
		t.total = t.ncap
	}
	t.ncap = 0
	t.names = t.names[:0]
	t.open = t.open[:0]
	t.extended = t.extendedAtStart
	canRepeat, afterQuant := false, false
	atomStart, atomLen := 0, 0
	i := 0
	for i < len(t.src) {
		c := t.src[i]
		ok := true
		quant := false
		before := t.out.Len()
		switch {
		case c == '\\':
			var next int
			next, ok = t.escape(i)
			atomStart, atomLen = before, t.escapeLen(i, next)
			t.addLen(atomLen)
			i = next
			canRepeat = true
		case c == '[':
			i, ok = t.class(i)
			atomStart, atomLen = before, 1
			t.addLen(1)
			canRepeat = true
		case c == '(':
			i, ok = t.group(i)
			canRepeat = false
		case c == ')':
			if len(t.open) == 0 {
				return t.fail("unmatched parentheses", i)
			}
			g := t.open[len(t.open)-1]
			t.open = t.open[:len(t.open)-1]
			if g.lookbehind && (g.variable || g.branchLen < 0) {
				return t.fail("lookbehind assertion is not fixed length", i)
			}
			n := g.branchLen
			if !g.lookbehind && g.firstLen != noBranch && g.firstLen != n {
				n = -1
			}
			if g.zeroWidth {
				n = 0
			}
			if n < 0 {
				t.markVariable()
			}
			t.addLen(n)
			atomStart, atomLen = g.outAt, n
			t.out.WriteByte(')')
			i++
			canRepeat = true
		case c == '|':
			if len(t.open) > 0 {
				g := &t.open[len(t.open)-1]
				switch {
				case g.lookbehind:
					if g.branchLen < 0 {
						g.variable = true
					}
				case g.firstLen == noBranch:
					g.firstLen = g.branchLen
				case g.firstLen != g.branchLen:
					g.firstLen = -1
				}
				g.branchLen = 0
			}
			t.out.WriteByte('|')
			i++
			canRepeat = false
		case c == '*' || c == '+' || c == '?':
			if afterQuant && c == '+' {
				// Possessive: PCRE's a*+ is the atomic group (?>a*).
				q := t.out.String()
				t.out.Reset()
				t.out.WriteString(q[:atomStart] + "(?>" + q[atomStart:] + ")")
				i++
				break
			}
			if afterQuant && c == '?' {
				t.out.WriteByte('?')
				i++
				break
			}
			if !canRepeat {
				return t.fail("nothing to repeat", i)
			}
			t.markVariable()
			t.addLen(-1)
			t.out.WriteRune(c)
			i++
			quant = true
		case c == '{':
			lo, hi, end, isQuant := t.repeatCount(i)
			if isQuant && hi >= 0 && hi < lo {
				return t.fail("numbers out of order in {} quantifier", end-1)
			}
			if isQuant && !canRepeat {
				return t.fail("nothing to repeat", i)
			}
			if isQuant {
				if lo != hi || atomLen < 0 {
					t.markVariable()
					t.addLen(-1)
				} else {
					t.addLen((lo - 1) * atomLen)
				}
				t.out.WriteString(string(t.src[i:end]))
				i = end
				quant = true
			} else {
				t.out.WriteString(`\{`)
				atomStart, atomLen = before, 1
				t.addLen(1)
				i++
				canRepeat = true
			}
		case t.extended && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'):
			i++
			continue
		case t.extended && c == '#':
			for i < len(t.src) && t.src[i] != '\n' {
				i++
			}
			continue
		default:
			t.literal(c)
			atomStart, atomLen = before, 1
			if c == '^' || c == '$' {
				atomLen = 0
			}
			t.addLen(atomLen)
			i++
			canRepeat = true
		}
		if !ok {
			return false
		}
		afterQuant = quant
	}
	if len(t.open) > 0 {
		return t.fail("missing )", len(t.src))
	}
	return true
}

// noBranch marks a group whose first alternative is not finished yet.
const noBranch = -2

// addLen adds n characters (-1: a variable amount) to the current branch of
// the innermost group, for PCRE's fixed-length lookbehind rule.
func (t *pcreTranslator) addLen(n int) {
	if len(t.open) == 0 {
		return
	}
	g := &t.open[len(t.open)-1]
	if g.branchLen < 0 {
		return
	}
	if n < 0 {
		g.branchLen = -1
		return
	}
	g.branchLen += n
}

// escapeLen is how many characters the escape at src[i:next] matches: 0 for
// assertions, -1 for back-references and \R.
func (t *pcreTranslator) escapeLen(i, next int) int {
	switch c := t.at(i + 1); {
	case strings.ContainsRune("bBAzZGE", c):
		return 0
	case c == 'Q':
		n := next - i - 2
		if next <= len(t.src) && t.at(next-2) == '\\' && t.at(next-1) == 'E' {
			n -= 2
		}
		return max(n, 0)
	case c >= '1' && c <= '9', c == 'k', c == 'g', c == 'R':
		return -1
	}
	return 1
}

// markVariable records a variable-length item inside a lookbehind, which
// PCRE rejects.
func (t *pcreTranslator) markVariable() {
	for k := range t.open {
		if t.open[k].lookbehind {
			t.open[k].variable = true
		}
	}
}

// repeatCount parses a {n}, {n,} or {n,m} quantifier at i; hi is -1 for
// "no upper bound". Anything else is a literal '{' in PCRE.
func (t *pcreTranslator) repeatCount(i int) (lo, hi, end int, ok bool) {
	j := i + 1
	num := func() (int, bool) {
		start := j
		n := 0
		for t.at(j) >= '0' && t.at(j) <= '9' {
			n = n*10 + int(t.at(j)-'0')
			j++
		}
		return n, j > start
	}
	lo, ok = num()
	if !ok {
		return 0, 0, 0, false
	}
	hi = lo
	if t.at(j) == ',' {
		j++
		var has bool
		if hi, has = num(); !has {
			hi = -1
		}
	}
	if t.at(j) != '}' {
		return 0, 0, 0, false
	}
	return lo, hi, j + 1, true
}

// literal copies a pattern character; regexp2 never sees the x option, so
// '#' and spaces need no escaping.
func (t *pcreTranslator) literal(r rune) {
	t.out.WriteRune(r)
}

func (t *pcreTranslator) quoted(r rune, inClass bool) {
	if strings.ContainsRune(`\^$.|?*+()[]{}-`, r) && (!inClass || strings.ContainsRune(`\^[]-`, r)) {
		t.out.WriteByte('\\')
	}
	t.out.WriteRune(r)
}

// readName reads a group name up to the terminator.
func (t *pcreTranslator) readName(i int, term rune) (string, int, bool) {
	start := i
	for i < len(t.src) && t.src[i] != term {
		r := t.src[i]
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "", i, false
		}
		i++
	}
	if i >= len(t.src) || i == start {
		return "", i, false
	}
	return string(t.src[start:i]), i + 1, true
}

// groupByName resolves a name to its (first) group number; in pass one
// names may be unknown yet.
func (t *pcreTranslator) groupByName(name string) (int, bool) {
	for _, n := range t.names {
		if n.name == name {
			return n.group, true
		}
	}
	return 0, !t.pass2
}

func (t *pcreTranslator) backref(n int) {
	fmt.Fprintf(&t.out, `(?:\%d)`, n)
}

func (t *pcreTranslator) escape(i int) (int, bool) {
	c := t.at(i + 1)
	switch c {
	case -1:
		return i, t.fail(`\ at end of pattern`, len(t.src))
	case 'd':
		t.out.WriteString(`[` + asciiDigit + `]`)
	case 'D':
		t.out.WriteString(`[^` + asciiDigit + `]`)
	case 'w':
		t.out.WriteString(`[` + asciiWord + `]`)
	case 'W':
		t.out.WriteString(`[^` + asciiWord + `]`)
	case 's':
		t.out.WriteString(`[` + asciiSpace + `]`)
	case 'S':
		t.out.WriteString(`[^` + asciiSpace + `]`)
	case 'h':
		t.out.WriteString(`[\t \xA0]`)
	case 'H':
		t.out.WriteString(`[^\t \xA0]`)
	case 'v':
		t.out.WriteString(`[\n\x0B\f\r\x85]`)
	case 'V':
		t.out.WriteString(`[^\n\x0B\f\r\x85]`)
	case 'R':
		t.out.WriteString(`(?:\r\n|[\n\x0B\f\r\x85])`)
	case 'b':
		// PCRE's word boundary uses the ASCII \w, regexp2's a Unicode one.
		t.out.WriteString(`(?:(?<=[` + asciiWord + `])(?![` + asciiWord + `])|(?<![` + asciiWord + `])(?=[` + asciiWord + `]))`)
	case 'B':
		t.out.WriteString(`(?:(?<=[` + asciiWord + `])(?=[` + asciiWord + `])|(?<![` + asciiWord + `])(?![` + asciiWord + `]))`)
	case 'Q':
		j := i + 2
		for j < len(t.src) && !(t.src[j] == '\\' && t.at(j+1) == 'E') {
			t.quoted(t.src[j], false)
			j++
		}
		if j < len(t.src) {
			j += 2
		}
		return j, true
	case 'E':
	case 'x':
		return t.hexEscape(i, false)
	case 'k':
		open := t.at(i + 2)
		var term rune
		switch open {
		case '<':
			term = '>'
		case '\'':
			term = '\''
		case '{':
			term = '}'
		default:
			return i, t.fail(`\k is not followed by a braced, angle-bracketed, or quoted name`, i)
		}
		name, j, ok := t.readName(i+3, term)
		if !ok {
			return i, t.fail("syntax error in subpattern name (missing terminator)", j)
		}
		g, ok := t.groupByName(name)
		if !ok {
			return i, t.fail("reference to non-existent subpattern", j-1)
		}
		t.backref(g)
		return j, true
	case 'g':
		j := i + 2
		braced := t.at(j) == '{'
		if braced {
			j++
		}
		neg := false
		if t.at(j) == '-' || t.at(j) == '+' {
			neg = t.at(j) == '-'
			j++
		}
		start := j
		for t.at(j) >= '0' && t.at(j) <= '9' {
			j++
		}
		var g int
		if j > start {
			g, _ = strconv.Atoi(string(t.src[start:j]))
			if neg {
				g = t.ncap - g + 1
			}
			if braced {
				if t.at(j) != '}' {
					return i, t.fail("a numbered reference must not be zero", i)
				}
				j++
			}
		} else if braced {
			name, k, ok := t.readName(j, '}')
			if !ok {
				return i, t.fail("syntax error in subpattern name (missing terminator)", k)
			}
			var found bool
			if g, found = t.groupByName(name); !found {
				return i, t.fail("reference to non-existent subpattern", k-1)
			}
			j = k
		} else {
			return i, t.fail(`a numbered reference must not be zero`, i)
		}
		if g <= 0 || (t.pass2 && g > t.total) {
			return i, t.fail("reference to non-existent subpattern", i)
		}
		t.backref(g)
		return j, true
	case '1', '2', '3', '4', '5', '6', '7', '8', '9':
		j := i + 1
		for t.at(j) >= '0' && t.at(j) <= '9' {
			j++
		}
		n, _ := strconv.Atoi(string(t.src[i+1 : j]))
		if n < 10 || n <= t.total || !t.pass2 {
			if t.pass2 && n > t.total {
				return i, t.fail("reference to non-existent subpattern", len(t.src))
			}
			t.backref(n)
			return j, true
		}
		// PCRE reads a large number that names no group as octal.
		t.out.WriteString(`\`)
		t.out.WriteString(string(t.src[i+1 : j]))
		return j, true
	case '_':
		t.out.WriteByte('_')
	default:
		if c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			// \b \B \A \z \Z \G \n \t \r \f \e \a \cX \0 \p \P and the
			// like mean the same in both dialects; regexp2 rejects the
			// PCRE-only ones (\K, \X, \C…) itself.
			t.out.WriteByte('\\')
			t.out.WriteRune(c)
			return i + 2, true
		}
		t.quoted(c, false)
	}
	return i + 2, true
}

// hexEscape handles \xH, \xHH and \x{H…}, which regexp2 does not all accept.
func (t *pcreTranslator) hexEscape(i int, inClass bool) (int, bool) {
	j := i + 2
	var v rune
	if t.at(j) == '{' {
		j++
		start := j
		for reIsHex(t.at(j)) {
			v = v*16 + reHexVal(t.at(j))
			if v > 0x10ffff {
				return i, t.fail("character value in \\x{} or \\o{} is too large", i)
			}
			j++
		}
		if t.at(j) != '}' || j == start {
			return i, t.fail("missing terminating } for \\x{}", i)
		}
		j++
	} else {
		for k := 0; k < 2 && reIsHex(t.at(j)); k++ {
			v = v*16 + reHexVal(t.at(j))
			j++
		}
	}
	if v <= 0xff {
		fmt.Fprintf(&t.out, `\x%02X`, v)
	} else if v <= 0xffff {
		fmt.Fprintf(&t.out, `\u%04X`, v)
	} else {
		t.quoted(v, inClass)
	}
	return j, true
}

func reIsHex(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'
}

func reHexVal(r rune) rune {
	switch {
	case r >= '0' && r <= '9':
		return r - '0'
	case r >= 'a' && r <= 'f':
		return r - 'a' + 10
	}
	return r - 'A' + 10
}

var rePosixClasses = map[string]string{
	"alpha":  `a-zA-Z`,
	"digit":  asciiDigit,
	"alnum":  `a-zA-Z0-9`,
	"upper":  `A-Z`,
	"lower":  `a-z`,
	"space":  asciiSpace,
	"blank":  `\t `,
	"punct":  `!-/:-@\[-` + "`" + `{-~`,
	"xdigit": `0-9A-Fa-f`,
	"word":   asciiWord,
	"cntrl":  `\x00-\x1F\x7F`,
	"print":  `\x20-\x7E`,
	"graph":  `\x21-\x7E`,
	"ascii":  `\x00-\x7F`,
}

func (t *pcreTranslator) class(i int) (int, bool) {
	t.out.WriteByte('[')
	i++
	prevLit := rune(-1) // the last plain character, for range checks
	if t.at(i) == '^' {
		t.out.WriteByte('^')
		i++
	}
	if t.at(i) == ']' {
		t.out.WriteString(`\]`)
		i++
	}
	for {
		c := t.at(i)
		switch c {
		case -1:
			return i, t.fail("missing terminating ] for character class", len(t.src))
		case ']':
			t.out.WriteByte(']')
			return i + 1, true
		case '[':
			if t.at(i+1) == ':' {
				end := i + 2
				for end < len(t.src) && t.src[end] != ':' && t.src[end] != ']' {
					end++
				}
				if t.at(end) == ':' && t.at(end+1) == ']' {
					name := string(t.src[i+2 : end])
					set, ok := rePosixClasses[name]
					if !ok {
						return i, t.fail("unknown POSIX class name", i+2)
					}
					t.out.WriteString(set)
					i = end + 2
					continue
				}
			}
			t.out.WriteString(`\[`)
			i++
		case '\\':
			d := t.at(i + 1)
			switch d {
			case -1:
				return i, t.fail(`\ at end of pattern`, len(t.src))
			case 'd':
				t.out.WriteString(asciiDigit)
			case 'w':
				t.out.WriteString(asciiWord)
			case 's':
				t.out.WriteString(asciiSpace)
			case 'b':
				t.out.WriteString(`\x08`)
			case 'x':
				var ok bool
				if i, ok = t.hexEscape(i, true); !ok {
					return i, false
				}
				continue
			case 'Q':
				j := i + 2
				for j < len(t.src) && !(t.src[j] == '\\' && t.at(j+1) == 'E') {
					t.quoted(t.src[j], true)
					j++
				}
				if j < len(t.src) {
					j += 2
				}
				i = j
				continue
			case 'E':
			case '_':
				t.out.WriteByte('_')
			default:
				t.out.WriteByte('\\')
				t.out.WriteRune(d)
			}
			i += 2
		default:
			if c == '-' && prevLit >= 0 {
				if n := t.at(i + 1); n != ']' && n != '\\' && n != '[' && n != -1 && n < prevLit {
					return i, t.fail("range out of order in character class", i+1)
				}
			}
			t.out.WriteRune(c)
			i++
			if c != '-' {
				prevLit = c
				continue
			}
		}
		prevLit = -1
	}
}

func (t *pcreTranslator) capture(name string, at int) {
	t.ncap++
	if name != "" {
		for _, n := range t.names {
			if n.name == name && !t.dupOK {
				t.fail("two named subpatterns have the same name", at)
				break
			}
		}
		t.names = append(t.names, reName{name, t.ncap, at})
	}
	t.push(openGroup{}, t.out.Len())
	fmt.Fprintf(&t.out, `(?<%d>`, t.ncap)
}

func (t *pcreTranslator) group(i int) (int, bool) {
	if t.at(i+1) == '*' {
		return i, t.fail("(*VERB) not recognized or malformed", i)
	}
	if t.at(i+1) != '?' {
		t.capture("", i)
		return i + 1, true
	}
	c := t.at(i + 2)
	switch c {
	case '#':
		j := i + 3
		for j < len(t.src) && t.src[j] != ')' {
			j++
		}
		if j >= len(t.src) {
			return i, t.fail("missing ) after comment", i)
		}
		return j + 1, true
	case ':', '=', '!', '>':
		t.push(openGroup{zeroWidth: c == '=' || c == '!'}, t.out.Len())
		t.out.WriteString("(?")
		t.out.WriteRune(c)
		return i + 3, true
	case '|':
		return i, t.fail("branch reset groups (?| are not supported by luaserve", i)
	case '<':
		if d := t.at(i + 3); d == '=' || d == '!' {
			t.push(openGroup{lookbehind: true, zeroWidth: true}, t.out.Len())
			t.out.WriteString("(?<")
			t.out.WriteRune(d)
			return i + 4, true
		}
		name, j, ok := t.readName(i+3, '>')
		if !ok {
			return i, t.fail("syntax error in subpattern name (missing terminator)", j)
		}
		t.capture(name, j-1)
		return j, t.err == ""
	case '\'':
		name, j, ok := t.readName(i+3, '\'')
		if !ok {
			return i, t.fail("syntax error in subpattern name (missing terminator)", j)
		}
		t.capture(name, j-1)
		return j, t.err == ""
	case 'P':
		switch t.at(i + 3) {
		case '<':
			name, j, ok := t.readName(i+4, '>')
			if !ok {
				return i, t.fail("syntax error in subpattern name (missing terminator)", j)
			}
			t.capture(name, j-1)
			return j, t.err == ""
		case '=':
			name, j, ok := t.readName(i+4, ')')
			if !ok {
				return i, t.fail("syntax error in subpattern name (missing terminator)", j)
			}
			g, ok := t.groupByName(name)
			if !ok {
				return i, t.fail("reference to non-existent subpattern", j-1)
			}
			t.backref(g)
			return j, true
		}
		return i, t.fail("recursive subpattern calls are not supported by luaserve", i)
	case 'R', '&', '+', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return i, t.fail("recursive subpattern calls are not supported by luaserve", i)
	case '-':
		if d := t.at(i + 3); d >= '0' && d <= '9' {
			return i, t.fail("recursive subpattern calls are not supported by luaserve", i)
		}
	case '(':
		// Conditions on a named group become conditions on its number.
		j := i + 3
		var term rune
		switch t.at(j) {
		case '<':
			term = '>'
		case '\'':
			term = '\''
		}
		if term != 0 {
			name, k, ok := t.readName(j+1, term)
			if !ok || t.at(k) != ')' {
				return i, t.fail("malformed number or name after (?(", i)
			}
			g, ok := t.groupByName(name)
			if !ok {
				return i, t.fail("reference to non-existent subpattern", k-1)
			}
			t.push(openGroup{}, t.out.Len())
			fmt.Fprintf(&t.out, "(?(%d)", g)
			return k + 1, true
		}
		if d := t.at(j); d >= '0' && d <= '9' {
			k := j
			for t.at(k) >= '0' && t.at(k) <= '9' {
				k++
			}
			if t.at(k) != ')' {
				return i, t.fail("malformed number or name after (?(", i)
			}
			t.push(openGroup{}, t.out.Len())
			fmt.Fprintf(&t.out, "(?(%s)", string(t.src[j:k]))
			return k + 1, true
		}
		// An assertion condition: the assertion is a group of its own.
		t.push(openGroup{}, t.out.Len())
		t.out.WriteString("(?")
		return i + 2, true
	}
	// Inline options such as (?i) or (?s-m:…) mean the same in both
	// dialects; x is applied here, since regexp2 never sees it.
	j := i + 2
	on := true
	for ; j < len(t.src); j++ {
		r := t.src[j]
		if r == '-' {
			on = false
			continue
		}
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			break
		}
		if r == 'x' {
			t.extended = on
		}
	}
	opts := strings.TrimSuffix(strings.ReplaceAll(string(t.src[i+2:j]), "x", ""), "-")
	switch t.at(j) {
	case ')':
		if opts != "" {
			t.out.WriteString("(?" + opts + ")")
		}
		return j + 1, true
	case ':':
		t.push(openGroup{}, t.out.Len())
		t.out.WriteString("(?" + opts + ":")
		return j + 1, true
	}
	return i, t.fail("unrecognized character after (? or (?-", j)
}

func (t *pcreTranslator) push(g openGroup, outAt int) {
	g.outAt, g.firstLen = outAt, noBranch
	t.open = append(t.open, g)
}

// reSubject is a subject prepared for matching: for regexp2 it becomes runes
// (built on first need), plus the byte offset of each rune when the "u"
// flag makes runes wider than bytes.
type reSubject struct {
	s       string
	flags   uint16
	ascii   bool
	ready   bool // runes are built
	runes   []rune
	offs    []int
	useOffs bool // rune index != byte offset
}

func (sub *reSubject) prepare(s string, flags uint16) {
	sub.s, sub.flags, sub.ready = s, flags, false
	sub.ascii = true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			sub.ascii = false
			break
		}
	}
}

func (sub *reSubject) build() {
	if sub.ready {
		return
	}
	sub.ready = true
	if sub.flags&reUTF8 == 0 || sub.ascii {
		sub.runes = latin1Runes(sub.runes, sub.s)
		sub.useOffs = false
		return
	}
	sub.runes, sub.offs, sub.useOffs = sub.runes[:0], sub.offs[:0], true
	for i, r := range sub.s {
		sub.runes = append(sub.runes, r)
		sub.offs = append(sub.offs, i)
	}
	sub.offs = append(sub.offs, len(sub.s))
}

func (sub *reSubject) byteAt(runeIdx int) int {
	if !sub.useOffs {
		return runeIdx
	}
	return sub.offs[runeIdx]
}

func (sub *reSubject) runeAt(byteOff int) int {
	if !sub.useOffs {
		return byteOff
	}
	return sort.SearchInts(sub.offs, byteOff)
}

// fastOK reports whether Go's regexp gives PCRE's answer for this subject
// at pos: the subject is ASCII (so bytes, runes and case folding agree), does
// not end in a newline (where PCRE's $ and multiline ^ differ from Go's),
// and a search from pos cannot see the text before it.
func (rx *ngxRegex) fastOK(sub *reSubject, pos int) bool {
	return rx.goRe != nil && sub.ascii &&
		(len(sub.s) == 0 || sub.s[len(sub.s)-1] != '\n') &&
		(pos == 0 || !rx.goLeftCtx)
}

// exec matches at or after byte offset pos. caps receives byte offsets of
// every group (-1 when unset); rc is PCRE's return value: one more than the
// highest group that matched, 0 for no match.
func (rx *ngxRegex) exec(sub *reSubject, pos int, caps []int) (rc int, err string) {
	if pos > len(sub.s) {
		return 0, ""
	}
	if rx.fastOK(sub, pos) {
		loc := rx.goRe.FindStringSubmatchIndex(sub.s[pos:])
		if loc == nil {
			return 0, ""
		}
		for g := 0; g <= rx.ncap; g++ {
			if loc[2*g] < 0 {
				caps[2*g], caps[2*g+1] = -1, -1
				continue
			}
			caps[2*g], caps[2*g+1] = loc[2*g]+pos, loc[2*g+1]+pos
			rc = g + 1
		}
		return rc, ""
	}
	if sub.flags&reUTF8 != 0 && !sub.ascii && pos < len(sub.s) && !utf8.RuneStart(sub.s[pos]) {
		return 0, "pcre_exec() failed: -11"
	}
	sub.build()
	m, e := rx.re.FindRunesMatchStartingAt(sub.runes, sub.runeAt(pos))
	if e != nil {
		return 0, "pcre_exec() failed: " + strconv.Itoa(pcreErrorMatchLimit)
	}
	if m == nil {
		return 0, ""
	}
	for g := 0; g <= rx.ncap; g++ {
		grp := m.GroupByNumber(g)
		if grp == nil || len(grp.Captures) == 0 {
			caps[2*g], caps[2*g+1] = -1, -1
			continue
		}
		caps[2*g] = sub.byteAt(grp.Index)
		caps[2*g+1] = sub.byteAt(grp.Index + grp.Length)
		rc = g + 1
	}
	return rc, ""
}

// reState is the per-VM scratch space of ngx.re; a VM runs one request at a
// time, so its functions can share it.
type reState struct {
	sub  reSubject
	caps []int
}

func (st *reState) capsFor(rx *ngxRegex) []int {
	n := 2 * (rx.ncap + 1)
	if cap(st.caps) < n {
		st.caps = make([]int, n)
	}
	return st.caps[:n]
}

// fillCaptures builds the match table as lua-resty-core's collect_captures:
// every group is a string or false, named groups appear under their names
// too (arrays with the "D" option).
func fillCaptures(L *lua.LState, rx *ngxRegex, subj string, caps []int, rc int, res *lua.LTable) *lua.LTable {
	if res == nil {
		res = L.CreateTable(rc, len(rx.names))
	}
	for i := 0; i <= rx.ncap; i++ {
		switch {
		case i >= rc || caps[2*i] < 0:
			res.RawSetInt(i, lua.LFalse)
		default:
			res.RawSetInt(i, lua.LString(subj[caps[2*i]:caps[2*i+1]]))
		}
	}
	if rx.flags&reDupNames != 0 {
		for i := 0; i < len(rx.names); {
			j := i
			var arr *lua.LTable
			for ; j < len(rx.names) && rx.names[j].name == rx.names[i].name; j++ {
				v := res.RawGetInt(rx.names[j].group)
				if v == lua.LNil || v == lua.LFalse {
					continue
				}
				if arr == nil {
					arr = L.CreateTable(2, 0)
				}
				arr.Append(v)
			}
			if arr != nil {
				res.RawSetString(rx.names[i].name, arr)
			} else {
				res.RawSetString(rx.names[i].name, lua.LNil)
			}
			i = j
		}
		return res
	}
	for _, n := range rx.names {
		res.RawSetString(n.name, res.RawGetInt(n.group))
	}
	return res
}

// registerNgxRe installs ngx.re (match, find, gmatch, sub, gsub) on ngx.
// Compiled "o" patterns are shared process-wide; scratch buffers are per VM.
func registerNgxRe(L *lua.LState, ngx *lua.LTable) {
	st := &reState{}
	re := L.NewTable()
	L.SetFuncs(re, map[string]lua.LGFunction{
		"match":  st.match,
		"find":   st.find,
		"gmatch": st.gmatch,
		"sub":    func(L *lua.LState) int { return st.replace(L, false) },
		"gsub":   func(L *lua.LState) int { return st.replace(L, true) },
	})
	ngx.RawSetString("re", re)
}

// reArgs reads (subject, regex, options) and compiles; on a compile error it
// returns a nil regex and the message.
func reArgs(L *lua.LState, optsArg int) (string, *ngxRegex, string) {
	// lua-resty-core runs tostring on the subject, so nil matches as "nil".
	subj := reToString(L, L.Get(1))
	pv, ok := L.Get(2).(lua.LString)
	if !ok {
		L.RaiseError("attempt to get length of local 'regex' (a %s value)", L.Get(2).Type().String())
	}
	pattern := string(pv)
	opts := ""
	if v := L.Get(optsArg); v != lua.LNil {
		opts = L.CheckString(optsArg)
	}
	flags := parseReOpts(L, opts)
	rx, msg := reCompile(pattern, flags)
	return subj, rx, msg
}

func reToString(L *lua.LState, v lua.LValue) string {
	switch lv := v.(type) {
	case lua.LString:
		return string(lv)
	case lua.LNumber:
		return ngxFormatNumber(float64(lv))
	}
	return L.ToStringMeta(v).String()
}

// reCtxPos reads ctx.pos (1-based) as a 0-based byte offset.
func reCtxPos(ctx *lua.LTable) int {
	if ctx == nil {
		return 0
	}
	if p, ok := ctx.RawGetString("pos").(lua.LNumber); ok && p > 0 {
		return int(p) - 1
	}
	return 0
}

func reOptTable(L *lua.LState, n int) *lua.LTable {
	switch v := L.Get(n).(type) {
	case *lua.LTable:
		return v
	case *lua.LNilType:
		return nil
	default:
		L.TypeError(n, lua.LTTable)
	}
	return nil
}

// badSubject reports the error PCRE gives for invalid UTF-8 under the "u"
// flag (PCRE_ERROR_BADUTF8), or "" when the subject is acceptable.
func badSubject(rx *ngxRegex, subj string) string {
	if rx.flags&reUTF8 != 0 && rx.flags&reNoUTF8Check == 0 && !utf8.ValidString(subj) {
		return "pcre_exec() failed: -10"
	}
	return ""
}

// exec runs rx on subj from ctx.pos for match and find: the captures, the
// match count (0: no match) and an error message.
func (st *reState) exec(rx *ngxRegex, subj string, ctx *lua.LTable) ([]int, int, string) {
	st.sub.prepare(subj, rx.flags)
	caps := st.capsFor(rx)
	if err := badSubject(rx, subj); err != "" {
		return caps, 0, err
	}
	rc, err := rx.exec(&st.sub, reCtxPos(ctx), caps)
	return caps, rc, err
}

func (st *reState) match(L *lua.LState) int {
	subj, rx, msg := reArgs(L, 3)
	if rx == nil {
		return pushNilErr(L, msg)
	}
	ctx := reOptTable(L, 4)
	res := reOptTable(L, 5)
	caps, rc, err := st.exec(rx, subj, ctx)
	if err != "" {
		return pushNilErr(L, err)
	}
	if rc == 0 {
		L.Push(lua.LNil)
		return 1
	}
	if ctx != nil {
		ctx.RawSetString("pos", lua.LNumber(caps[1]+1))
	}
	L.Push(fillCaptures(L, rx, subj, caps, rc, res))
	return 1
}

func (st *reState) find(L *lua.LState) int {
	subj, rx, msg := reArgs(L, 3)
	if rx == nil {
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		L.Push(lua.LString(msg))
		return 3
	}
	ctx := reOptTable(L, 4)
	nth := 0
	if v := L.Get(5); v != lua.LNil {
		nth = L.CheckInt(5)
		if nth < 0 {
			nth = 0
		}
	}
	caps, rc, err := st.exec(rx, subj, ctx)
	if err != "" {
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		L.Push(lua.LString(err))
		return 3
	}
	if rc == 0 {
		L.Push(lua.LNil)
		return 1
	}
	if ctx != nil {
		ctx.RawSetString("pos", lua.LNumber(caps[1]+1))
	}
	if nth > rx.ncap {
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		L.Push(lua.LString("nth out of bound"))
		return 3
	}
	if nth >= rc || caps[2*nth] < 0 {
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		return 2
	}
	L.Push(lua.LNumber(caps[2*nth] + 1))
	L.Push(lua.LNumber(caps[2*nth+1]))
	return 2
}

// reAdvanceEmpty returns the offset after an empty match at pos: one byte,
// even with the "u" flag, as lua-resty-core does (the next search then fails
// with PCRE_ERROR_BADUTF8_OFFSET inside a multi-byte character).
func reAdvanceEmpty(_ *ngxRegex, _ string, pos int) int {
	return pos + 1
}

func (st *reState) gmatch(L *lua.LState) int {
	subj, rx, msg := reArgs(L, 3)
	if rx == nil {
		return pushNilErr(L, msg)
	}
	if err := badSubject(rx, subj); err != "" {
		return pushNilErr(L, err)
	}
	// The iterator outlives this call and may interleave with other ngx.re
	// calls, so it owns its subject and captures.
	it := &reSubject{}
	it.prepare(subj, rx.flags)
	caps := make([]int, 2*(rx.ncap+1))
	pos, done := 0, false
	// lua-resty-core's iterator is a table with a __call metamethod, so
	// type(it) is "table"; calling it ignores the self argument.
	iter := L.NewTable()
	mt := L.NewTable()
	iter.Metatable = mt
	L.Push(iter)
	mt.RawSetString("__call", L.NewFunction(func(L *lua.LState) int {
		if done {
			L.Push(lua.LNil)
			return 1
		}
		rc, err := rx.exec(it, pos, caps)
		if err != "" {
			done = true
			return pushNilErr(L, err)
		}
		if rc == 0 {
			done = true
			L.Push(lua.LNil)
			return 1
		}
		if caps[0] == caps[1] {
			if caps[1] >= len(subj) {
				done = true
			}
			pos = reAdvanceEmpty(rx, subj, caps[1])
		} else {
			pos = caps[1]
		}
		L.Push(fillCaptures(L, rx, subj, caps, rc, nil))
		return 1
	}))
	return 1
}

// replTemplate is a compiled ngx.re.sub replacement: literal pieces and
// capture references ($0, $1, ${1}, $$).
type replTemplate struct {
	lits []string
	refs []int // refs[i] follows lits[i]; -1 for none
}

// compileReplTemplate follows ngx_http_lua_script_compile: only numbered
// captures are supported; a name, a lone '$' or an unclosed '{' is an error.
func compileReplTemplate(s string) (*replTemplate, bool) {
	t := &replTemplate{}
	var lit []byte
	for i := 0; i < len(s); {
		if s[i] != '$' {
			lit = append(lit, s[i])
			i++
			continue
		}
		i++
		if i == len(s) {
			return nil, false
		}
		if s[i] == '$' {
			lit = append(lit, '$')
			i++
			continue
		}
		bracket := false
		if s[i] == '{' {
			bracket = true
			i++
			if i == len(s) {
				return nil, false
			}
		}
		if s[i] < '0' || s[i] > '9' {
			return nil, false
		}
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			n = n*10 + int(s[i]-'0')
			i++
		}
		if bracket {
			if i == len(s) || s[i] != '}' {
				return nil, false
			}
			i++
		}
		t.lits = append(t.lits, string(lit))
		t.refs = append(t.refs, n)
		lit = lit[:0]
	}
	t.lits = append(t.lits, string(lit))
	t.refs = append(t.refs, -1)
	return t, true
}

func (t *replTemplate) expand(dst []byte, subj string, caps []int, rc int) []byte {
	for i, lit := range t.lits {
		dst = append(dst, lit...)
		if n := t.refs[i]; n >= 0 && n < rc && caps[2*n] >= 0 {
			dst = append(dst, subj[caps[2*n]:caps[2*n+1]]...)
		}
	}
	return dst
}

func (st *reState) replace(L *lua.LState, global bool) int {
	subj, rx, msg := reArgs(L, 4)
	var tpl *replTemplate
	var fn *lua.LFunction
	if f, ok := L.Get(3).(*lua.LFunction); ok {
		fn = f
	}
	if rx == nil {
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		L.Push(lua.LString(msg))
		return 3
	}
	if fn == nil {
		var ok bool
		if tpl, ok = compileReplTemplate(reToString(L, L.Get(3))); !ok {
			L.Push(lua.LNil)
			L.Push(lua.LNil)
			L.Push(lua.LString("failed to compile the replacement template"))
			return 3
		}
	}
	if err := badSubject(rx, subj); err != "" {
		L.Push(lua.LNil)
		L.Push(lua.LNil)
		L.Push(lua.LString(err))
		return 3
	}
	// A replacement function may call ngx.re itself, so this call works on
	// its own subject and captures.
	sub := &st.sub
	caps := st.capsFor(rx)
	if fn != nil {
		sub = &reSubject{}
		caps = make([]int, 2*(rx.ncap+1))
	}
	sub.prepare(subj, rx.flags)
	var out []byte
	pos, copied, count := 0, 0, 0
	for pos <= len(subj) {
		rc, err := rx.exec(sub, pos, caps)
		if err != "" {
			L.Push(lua.LNil)
			L.Push(lua.LNil)
			L.Push(lua.LString(err))
			return 3
		}
		if rc == 0 {
			break
		}
		count++
		from, to := caps[0], caps[1]
		out = append(out, subj[copied:from]...)
		if fn != nil {
			m := fillCaptures(L, rx, subj, caps, rc, nil)
			L.Push(fn)
			L.Push(m)
			L.Call(1, 1)
			out = append(out, reToString(L, L.Get(-1))...)
			L.Pop(1)
		} else {
			out = tpl.expand(out, subj, caps, rc)
		}
		copied = to
		if !global {
			break
		}
		if from == to {
			if to >= len(subj) {
				break
			}
			next := reAdvanceEmpty(rx, subj, to)
			out = append(out, subj[to:next]...)
			copied = next
			pos = next
		} else {
			pos = to
		}
	}
	if count == 0 {
		L.Push(lua.LString(subj))
		L.Push(lua.LNumber(0))
		return 2
	}
	out = append(out, subj[copied:]...)
	L.Push(lua.LString(out))
	L.Push(lua.LNumber(count))
	return 2
}
