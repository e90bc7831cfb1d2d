package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dump renders a directive tree compactly for golden comparisons.
func dump(ds []*Directive) string {
	var sb strings.Builder
	for i, d := range ds {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%d:%s", d.Line, d.Name)
		for _, a := range d.Args {
			fmt.Fprintf(&sb, " %q", a)
		}
		switch {
		case d.LuaBlock:
			fmt.Fprintf(&sb, " lua%q", d.Code)
		case d.HasBlock:
			sb.WriteString(" {" + dump(d.Block) + "}")
		default:
			sb.WriteByte(';')
		}
	}
	return sb.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", ""},
		{"comments only", "# a\n  # b {\n", ""},
		{"simple", "a b c;", `1:a "b" "c";`},
		{"no args", "a;", `1:a;`},
		{"block", "http {\n server { listen 80; }\n}", `1:http {2:server {2:listen "80";}}`},
		{"empty block", "events {}", `1:events {}`},
		{"lines", "a\n\nb\n c;\nd;", `1:a "b" "c"; 5:d;`},
		{"double quotes", `a "b c" "";`, `1:a "b c" "";`},
		{"single quotes", `a 'b "c"' '{;}';`, `1:a "b \"c\"" "{;}";`},
		{"escapes", `a "x\"y" 'p\'q' "t\tn\nr\r" "\\" "\d";`, `1:a "x\"y" "p'q" "t\tn\nr\r" "\\" "\\d";`},
		{"escape in word keeps other backslashes", `a b\ c d\;e \"x;`, `1:a "b\\ c" "d\\;e" "\"x";`},
		{"dollar brace", `set $a ${b}c;`, `1:set "$a" "${b}c";`},
		{"brace in word", `a b} c{ d; }`, `1:a "b}" "c" {1:d;}`},
		{"hash in word", `a b#c; # comment`, `1:a "b#c";`},
		{"comment ends at newline", "a # x ; }\n b;", `1:a "b";`},
		{"quote then semicolon", `a "b";`, `1:a "b";`},
		{"quote then brace", `location "/x"{ }`, `1:location "/x" {}`},
		{"quote in word is literal", `a b"c";`, `1:a "b\"c\"";`},
		{"multiline quoted", "a 'x\ny';\nb;", "1:a \"x\\ny\"; 3:b;"},
		{"crlf", "a b;\r\nc;\r\n", `1:a "b"; 2:c;`},
		{"lua block simple", "content_by_lua_block { ngx.say('hi') }", `1:content_by_lua_block lua" ngx.say('hi') "`},
		{"lua block braces in strings", `content_by_lua_block { local a = "}" local b = '{' }`, `1:content_by_lua_block lua" local a = \"}\" local b = '{' "`},
		{"lua block escaped quotes", `content_by_lua_block { local a = "\"}" local b = '\'{' }`, `1:content_by_lua_block lua" local a = \"\\\"}\" local b = '\\'{' "`},
		{"lua block long string", `content_by_lua_block { local s = [[ } ]] }`, `1:content_by_lua_block lua" local s = [[ } ]] "`},
		{"lua block leveled long string", `content_by_lua_block { local s = [==[ ]] } ]=] ]==] }`, `1:content_by_lua_block lua" local s = [==[ ]] } ]=] ]==] "`},
		{"lua block line comment", "content_by_lua_block {\n -- }\n x = 1\n}", `1:content_by_lua_block lua"\n -- }\n x = 1\n"`},
		{"lua block long comment", "content_by_lua_block { --[[ } ]] x = 1 }", `1:content_by_lua_block lua" --[[ } ]] x = 1 "`},
		{"lua block leveled long comment", "content_by_lua_block { --[=[ ]] } ]=] }", `1:content_by_lua_block lua" --[=[ ]] } ]=] "`},
		{"lua block nested tables", "content_by_lua_block { t = { a = { b = 1 } } }", `1:content_by_lua_block lua" t = { a = { b = 1 } } "`},
		{"lua block index not long string", "content_by_lua_block { t[1] = t[ 2 ] }", `1:content_by_lua_block lua" t[1] = t[ 2 ] "`},
		{"lua block minus", "content_by_lua_block { x = 1 - 2 } a;", `1:content_by_lua_block lua" x = 1 - 2 " 1:a;`},
		{"lua block then directives", "location / {\n content_by_lua_block {\n  ngx.say(1)\n }\n access_log off;\n}",
			`1:location "/" {2:content_by_lua_block lua"\n  ngx.say(1)\n " 5:access_log "off";}`},
		{"lua block line counting", "init_by_lua_block { a = [[\n\n]] -- x\n b = '\\\n' }\nfoo;", `1:init_by_lua_block lua" a = [[\n\n]] -- x\n b = '\\\n' " 6:foo;`},
		{"non-lua block keeps nginx rules", "location / { set $a '}'; }", `1:location "/" {1:set "$a" "}";}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Parse("nginx.conf", []byte(tt.src))
			require.NoError(t, err)
			assert.Equal(t, tt.want, dump(ds))
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"stray close", "a;\n}", `unexpected "}" in f.conf:2`},
		{"close after args", "a b }", `unexpected "}" in f.conf:1`},
		{"eof in block", "http {\n server {\n", `unexpected end of file, expecting "}" in f.conf:3`},
		{"eof in directive", "a b", `unexpected end of file, expecting ";" or "}" in f.conf:1`},
		{"eof in quote", "a \"b;\n", `unexpected end of file, expecting ";" or "}" in f.conf:2`},
		{"lone semicolon", "a;\n;", `unexpected ";" in f.conf:2`},
		{"lone brace", "{ a; }", `unexpected "{" in f.conf:1`},
		{"text after quote", `a "b"c;`, `unexpected "c" in f.conf:1`},
		{"text after single quote", "a\n'b'x;", `unexpected "x" in f.conf:2`},
		{"quote after quote", `a "b""c";`, `unexpected """ in f.conf:1`},
		{"lua eof", "content_by_lua_block {\n x = 1\n", `unexpected end of file, expecting "}" in f.conf:3`},
		{"lua unclosed long string", "content_by_lua_block {\n x = [==[ }\n", `Lua code block missing the closing long bracket of a long string in f.conf:2`},
		{"lua unclosed long comment", "content_by_lua_block { --[[ }", `Lua code block missing the closing long bracket of a long comment in f.conf:1`},
		{"lua unclosed quote", `content_by_lua_block { x = "}`, `Lua code block missing the closing quote in f.conf:1`},
		{"too deep", strings.Repeat("a {", 100), `too deeply nested blocks in f.conf:1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.conf", []byte(tt.src))
			require.Error(t, err)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"http { server { listen 80; location / { content_by_lua_block { ngx.say('}') } } } }",
		`a "b\"c" 'd' e\ f ${x}y;`,
		"content_by_lua_block { --[==[ } ]==] x = [[ { ]] }",
		"# c\n a { b; } }",
		"a \"",
		"init_by_lua_block { '\\",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			ds, err := Parse("fuzz.conf", src)
			if err != nil {
				var ce *ConfigError
				if !assert.ErrorAs(t, err, &ce) || ce.Line < 1 {
					t.Errorf("bad error %v", err)
				}
				return
			}
			checkTree(t, ds, 0)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Parse hung on %q", src)
		}
	})
}

func checkTree(t *testing.T, ds []*Directive, depth int) {
	if depth > maxBlockDepth {
		t.Fatalf("tree deeper than %d", maxBlockDepth)
	}
	for _, d := range ds {
		if d.Line < 1 || d.File != "fuzz.conf" {
			t.Fatalf("bad position %s:%d", d.File, d.Line)
		}
		checkTree(t, d.Block, depth+1)
	}
}
