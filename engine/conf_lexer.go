package engine

import (
	"fmt"
	"strconv"
)

// ConfigError is a config load error at a place in a file. Error() follows
// nginx: the message, then " in file:line".
type ConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.File == "" {
		return e.Msg
	}
	return e.Msg + " in " + e.File + ":" + strconv.Itoa(e.Line)
}

// Warning is a non-fatal remark about the config, logged as [warn] at load.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string {
	if w.File == "" {
		return w.Msg
	}
	return w.Msg + " in " + w.File + ":" + strconv.Itoa(w.Line)
}

// token is one word of a directive with the line it starts on.
type token struct {
	text string
	line int
}

// stop says how a directive's word list ended.
type stop int

const (
	stopSemicolon  stop = iota // ";"
	stopBlockStart             // "{"
	stopBlockEnd               // "}" with no words before it
	stopEOF                    // end of input with no words pending
)

// lexer reads nginx.conf the way ngx_conf_read_token does, one directive's
// words at a time, so quirks carry over: quotes must be followed by a
// separator, "}" inside a word is literal, "${" does not open a block, and "#"
// starts a comment only where a word could start.
type lexer struct {
	file string
	src  []byte
	pos  int
	line int
	buf  []byte // scratch for unescaping
}

func newLexer(file string, src []byte) *lexer {
	return &lexer{file: file, src: src, line: 1}
}

func (lx *lexer) errorf(line int, format string, a ...any) *ConfigError {
	return &ConfigError{File: lx.file, Line: line, Msg: fmt.Sprintf(format, a...)}
}

func isConfSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// readDirective reads words into args (reusing its storage) up to ";", "{" or
// "}". startLine is the line of the first word.
func (lx *lexer) readDirective(args []token) ([]token, stop, error) {
	args = args[:0]
	var (
		sharpComment, quoted, sQuoted, dQuoted, variable, needSpace bool
		lastSpace                                                   = true
		start, startLine                                            int
	)
	for {
		if lx.pos >= len(lx.src) {
			if len(args) > 0 || !lastSpace {
				return args, stopEOF, lx.errorf(lx.line, `unexpected end of file, expecting ";" or "}"`)
			}
			return args, stopEOF, nil
		}
		ch := lx.src[lx.pos]
		lx.pos++
		if ch == '\n' {
			lx.line++
			if sharpComment {
				sharpComment = false
			}
		}
		if sharpComment {
			continue
		}
		if quoted {
			quoted = false
			continue
		}
		if needSpace {
			switch {
			case isConfSpace(ch):
				lastSpace, needSpace = true, false
				continue
			case ch == ';':
				return args, stopSemicolon, nil
			case ch == '{':
				return args, stopBlockStart, nil
			case ch == ')':
				lastSpace, needSpace = true, false
			default:
				return args, 0, lx.errorf(lx.line, "unexpected \"%c\"", ch)
			}
		}
		if lastSpace {
			start, startLine = lx.pos-1, lx.line
			if isConfSpace(ch) {
				continue
			}
			switch ch {
			case ';', '{':
				if len(args) == 0 {
					return args, 0, lx.errorf(lx.line, "unexpected \"%c\"", ch)
				}
				if ch == '{' {
					return args, stopBlockStart, nil
				}
				return args, stopSemicolon, nil
			case '}':
				if len(args) != 0 {
					return args, 0, lx.errorf(lx.line, `unexpected "}"`)
				}
				return args, stopBlockEnd, nil
			case '#':
				sharpComment = true
				continue
			case '\\':
				quoted, lastSpace = true, false
				continue
			case '"':
				start++
				dQuoted, lastSpace = true, false
				continue
			case '\'':
				start++
				sQuoted, lastSpace = true, false
				continue
			case '$':
				variable, lastSpace = true, false
				continue
			default:
				lastSpace = false
			}
			continue
		}
		if ch == '{' && variable {
			continue
		}
		variable = false
		if ch == '\\' {
			quoted = true
			continue
		}
		if ch == '$' {
			variable = true
			continue
		}
		found := false
		switch {
		case dQuoted:
			if ch == '"' {
				dQuoted, needSpace, found = false, true, true
			}
		case sQuoted:
			if ch == '\'' {
				sQuoted, needSpace, found = false, true, true
			}
		case isConfSpace(ch) || ch == ';' || ch == '{':
			lastSpace, found = true, true
		}
		if !found {
			continue
		}
		args = append(args, token{text: lx.unescape(lx.src[start : lx.pos-1]), line: startLine})
		if ch == ';' {
			return args, stopSemicolon, nil
		}
		if ch == '{' {
			return args, stopBlockStart, nil
		}
	}
}

// unescape applies nginx's word unescaping: \" \' \\ lose the backslash, \t
// \r \n become control characters, any other backslash stays.
func (lx *lexer) unescape(w []byte) string {
	lx.buf = lx.buf[:0]
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c == '\\' && i+1 < len(w) {
			switch w[i+1] {
			case '"', '\'', '\\':
				i++
				c = w[i]
			case 't':
				i++
				c = '\t'
			case 'r':
				i++
				c = '\r'
			case 'n':
				i++
				c = '\n'
			}
		}
		lx.buf = append(lx.buf, c)
	}
	return string(lx.buf)
}

// readLuaBlock scans Lua source from just after a "*_by_lua_block {" up to the
// "}" that closes it, skipping braces inside strings, long strings and
// comments, as lua-nginx-module's block reader does. It returns the body
// without the outer braces.
func (lx *lexer) readLuaBlock() (string, error) {
	src := lx.src
	start := lx.pos
	depth := 1
	for lx.pos < len(src) {
		ch := src[lx.pos]
		switch ch {
		case '\n':
			lx.line++
			lx.pos++
		case '{':
			depth++
			lx.pos++
		case '}':
			depth--
			lx.pos++
			if depth == 0 {
				return string(src[start : lx.pos-1]), nil
			}
		case '"', '\'':
			if err := lx.skipLuaString(ch); err != nil {
				return "", err
			}
		case '[':
			if lvl, ok := longBracketOpen(src, lx.pos); ok {
				if err := lx.skipLongBracket(lvl, "string"); err != nil {
					return "", err
				}
			} else {
				lx.pos++
			}
		case '-':
			if lx.pos+1 < len(src) && src[lx.pos+1] == '-' {
				lx.pos += 2
				if lvl, ok := longBracketOpen(src, lx.pos); ok {
					if err := lx.skipLongBracket(lvl, "comment"); err != nil {
						return "", err
					}
					continue
				}
				for lx.pos < len(src) && src[lx.pos] != '\n' {
					lx.pos++
				}
			} else {
				lx.pos++
			}
		default:
			lx.pos++
		}
	}
	return "", lx.errorf(lx.line, `unexpected end of file, expecting "}"`)
}

// longBracketOpen reports whether src[i:] starts a Lua long bracket "[", "=",
// ..., "[" and its level.
func longBracketOpen(src []byte, i int) (int, bool) {
	if i >= len(src) || src[i] != '[' {
		return 0, false
	}
	j := i + 1
	for j < len(src) && src[j] == '=' {
		j++
	}
	if j < len(src) && src[j] == '[' {
		return j - i - 1, true
	}
	return 0, false
}

func (lx *lexer) skipLongBracket(level int, what string) error {
	src := lx.src
	line := lx.line
	lx.pos += level + 2
	for lx.pos < len(src) {
		ch := src[lx.pos]
		lx.pos++
		if ch == '\n' {
			lx.line++
			continue
		}
		if ch != ']' {
			continue
		}
		j := lx.pos
		for j < len(src) && src[j] == '=' {
			j++
		}
		if j-lx.pos == level && j < len(src) && src[j] == ']' {
			lx.pos = j + 1
			return nil
		}
	}
	return lx.errorf(line, "Lua code block missing the closing long bracket of a long %s", what)
}

func (lx *lexer) skipLuaString(q byte) error {
	src := lx.src
	line := lx.line
	lx.pos++
	for lx.pos < len(src) {
		ch := src[lx.pos]
		lx.pos++
		switch ch {
		case q:
			return nil
		case '\\':
			if lx.pos < len(src) {
				if src[lx.pos] == '\n' {
					lx.line++
				}
				lx.pos++
			}
		case '\n':
			// Lua rejects this; leave the error to the Lua compiler.
			lx.line++
			return nil
		}
	}
	return lx.errorf(line, "Lua code block missing the closing quote")
}
