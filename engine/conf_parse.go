package engine

import (
	"strings"
)

// Directive is one nginx.conf directive with its words and, for block
// directives, its children. A "*_by_lua_block { … }" directive has HasBlock
// and LuaBlock set and its Lua body in Code (Block is nil).
type Directive struct {
	Name     string
	Args     []string
	File     string
	Line     int
	Block    []*Directive
	HasBlock bool

	LuaBlock bool
	Code     string
}

// maxBlockDepth bounds nesting so hostile input cannot exhaust the stack.
const maxBlockDepth = 64

// Parse turns one file's text into its directive tree. It does not expand
// includes or check directives against the table; Load does both. file is
// used only for error locations.
func Parse(file string, src []byte) ([]*Directive, error) {
	p := &parser{lx: newLexer(file, src)}
	return p.block(0)
}

type parser struct {
	lx   *lexer
	args []token
}

func (p *parser) block(depth int) ([]*Directive, error) {
	var out []*Directive
	for {
		args, st, err := p.lx.readDirective(p.args)
		p.args = args
		if err != nil {
			return nil, err
		}
		switch st {
		case stopEOF:
			if depth > 0 {
				return nil, p.lx.errorf(p.lx.line, `unexpected end of file, expecting "}"`)
			}
			return out, nil
		case stopBlockEnd:
			if depth == 0 {
				return nil, p.lx.errorf(p.lx.line, `unexpected "}"`)
			}
			return out, nil
		}
		d := &Directive{Name: args[0].text, File: p.lx.file, Line: args[0].line}
		if len(args) > 1 {
			d.Args = make([]string, len(args)-1)
			for i, t := range args[1:] {
				d.Args[i] = t.text
			}
		}
		out = append(out, d)
		if st != stopBlockStart {
			continue
		}
		d.HasBlock = true
		if strings.HasSuffix(d.Name, "_by_lua_block") {
			code, err := p.lx.readLuaBlock()
			if err != nil {
				return nil, err
			}
			d.LuaBlock, d.Code = true, code
			continue
		}
		if depth+1 >= maxBlockDepth {
			return nil, p.lx.errorf(p.lx.line, "too deeply nested blocks")
		}
		if d.Block, err = p.block(depth + 1); err != nil {
			return nil, err
		}
		if d.Block == nil {
			d.Block = []*Directive{}
		}
	}
}
