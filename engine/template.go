package engine

import (
	"errors"
	"fmt"
	"strings"
)

// Template is an nginx string with variables: "$var", "${var}" and the regex
// captures "$1".."$9" (one digit, as nginx: "$10" is "$1" followed by "0").
// "\$" stands for a literal dollar sign. A Template is immutable and safe for
// concurrent use.
type Template struct {
	src  string
	segs []tmplSeg
	vars []string
}

// tmplSeg is either a literal (name == "") or a variable reference.
type tmplSeg struct {
	lit  string
	name string
}

// captureNames are the lookup names of $0..$9, shared so Append never builds
// a string per call.
var captureNames = [10]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// ParseTemplate parses s. Errors use nginx's wording for bad variable syntax.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{src: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.segs = append(t.segs, tmplSeg{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == '$' {
			lit.WriteByte('$')
			i += 2
			continue
		}
		if c != '$' {
			lit.WriteByte(c)
			i++
			continue
		}
		i++
		if i < len(s) && s[i] >= '1' && s[i] <= '9' {
			flush()
			t.addVar(captureNames[s[i]-'0'])
			i++
			continue
		}
		braced := i < len(s) && s[i] == '{'
		if braced {
			i++
		}
		start := i
		for i < len(s) && isVarNameByte(s[i]) {
			i++
		}
		if i == start {
			return nil, fmt.Errorf("invalid variable name in %q", s)
		}
		name := s[start:i]
		if braced {
			if i >= len(s) || s[i] != '}' {
				return nil, fmt.Errorf("the closing bracket in %q variable is missing", name)
			}
			i++
		}
		flush()
		t.addVar(name)
	}
	flush()
	return t, nil
}

func (t *Template) addVar(name string) {
	t.segs = append(t.segs, tmplSeg{name: name})
	for _, v := range t.vars {
		if v == name {
			return
		}
	}
	t.vars = append(t.vars, name)
}

func isVarNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// String returns the template source as written in the config.
func (t *Template) String() string { return t.src }

// Static reports the template's value and true when it has no variables.
func (t *Template) Static() (string, bool) {
	if len(t.vars) > 0 {
		return "", false
	}
	if len(t.segs) == 0 {
		return "", true
	}
	return t.segs[0].lit, true
}

// Append appends the expanded template to dst. Captures are looked up by the
// names "1".."9". Unknown variables expand to nothing, as nginx's empty value.
// It allocates only when dst must grow or lookup allocates.
func (t *Template) Append(dst []byte, lookup func(name string) []byte) []byte {
	for i := range t.segs {
		sg := &t.segs[i]
		if sg.name == "" {
			dst = append(dst, sg.lit...)
		} else if lookup != nil {
			dst = append(dst, lookup(sg.name)...)
		}
	}
	return dst
}

// Vars returns the distinct variable names the template references, in order
// of first use; captures appear as "1".."9". The slice must not be modified.
func (t *Template) Vars() []string { return t.vars }

// literalPrefix is the text before the first variable.
func (t *Template) literalPrefix() string {
	if len(t.segs) > 0 && t.segs[0].name == "" {
		return t.segs[0].lit
	}
	return ""
}

// ErrPathEscapes is returned when a path built from request data would leave
// the directory it is confined to.
var ErrPathEscapes = errors.New("engine: path escapes its base directory")

// AppendJoin appends base + "/" + rel to dst with rel cleaned like path.Clean
// ("." and ".." resolved, repeated slashes folded). It reports false (and
// returns dst unchanged) when rel would climb above base or holds a NUL byte.
// base must be clean and must not end in "/" unless it is "/". No allocations
// beyond growing dst.
func AppendJoin(dst []byte, base string, rel []byte) ([]byte, bool) {
	orig := len(dst)
	dst = append(dst, base...)
	root := len(dst) // nothing at or before this index may be removed
	for i := 0; i < len(rel); {
		for i < len(rel) && rel[i] == '/' {
			i++
		}
		j := i
		for j < len(rel) && rel[j] != '/' {
			if rel[j] == 0 {
				return dst[:orig], false
			}
			j++
		}
		seg := rel[i:j]
		i = j
		switch {
		case len(seg) == 0, len(seg) == 1 && seg[0] == '.':
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			if len(dst) == root {
				return dst[:orig], false
			}
			k := len(dst) - 1
			for k > root && dst[k] != '/' {
				k--
			}
			dst = dst[:k]
		default:
			if len(dst) == 0 || dst[len(dst)-1] != '/' {
				dst = append(dst, '/')
			}
			dst = append(dst, seg...)
		}
	}
	return dst, true
}
