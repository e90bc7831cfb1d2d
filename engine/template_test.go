package engine

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTemplate(t *testing.T) {
	vars := map[string]string{"host": "example.com", "uri": "/a b", "1": "one", "2": "two", "a_b": "AB", "x": ""}
	lookup := func(name string) []byte {
		if v, ok := vars[name]; ok {
			return []byte(v)
		}
		return nil
	}
	tests := []struct {
		src, want string
		vars      []string
		static    bool
	}{
		{"", "", nil, true},
		{"plain text", "plain text", nil, true},
		{"$host", "example.com", []string{"host"}, false},
		{"http://$host$uri", "http://example.com/a b", []string{"host", "uri"}, false},
		{"${host}x", "example.comx", []string{"host"}, false},
		{"$hostx", "", []string{"hostx"}, false},
		{"$1-$2-$1", "one-two-one", []string{"1", "2"}, false},
		{"$10", "one0", []string{"1"}, false},
		{"scripts/$1.lua", "scripts/one.lua", []string{"1"}, false},
		{"$a_b.", "AB.", []string{"a_b"}, false},
		{`\$host`, "$host", nil, true},
		{`cost \$5 $x!`, "cost $5 !", []string{"x"}, false},
		{`a\b`, `a\b`, nil, true},
		{"$unknown", "", []string{"unknown"}, false},
	}
	for _, tt := range tests {
		tp, err := ParseTemplate(tt.src)
		require.NoError(t, err, tt.src)
		assert.Equal(t, tt.src, tp.String())
		assert.Equal(t, tt.want, string(tp.Append(nil, lookup)), tt.src)
		assert.Equal(t, tt.vars, tp.Vars(), tt.src)
		s, ok := tp.Static()
		assert.Equal(t, tt.static, ok, tt.src)
		if ok {
			assert.Equal(t, tt.want, s)
		}
	}
	for src, msg := range map[string]string{
		"$":        `invalid variable name in "$"`,
		"a$ b":     `invalid variable name in "a$ b"`,
		"${}":      `invalid variable name in "${}"`,
		"${host":   `the closing bracket in "host" variable is missing`,
		"${ho-st}": `the closing bracket in "ho" variable is missing`,
	} {
		_, err := ParseTemplate(src)
		assert.EqualError(t, err, msg, src)
	}
}

func TestTemplateAppendZeroAllocs(t *testing.T) {
	tp, err := ParseTemplate("http://$host${uri}?a=$1")
	require.NoError(t, err)
	val := []byte("v")
	lookup := func(string) []byte { return val }
	buf := make([]byte, 0, 64)
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = tp.Append(buf[:0], lookup) }))
	assert.Equal(t, "http://vv?a=v", string(buf))
}

func TestAppendJoin(t *testing.T) {
	tests := []struct {
		base, rel, want string
		ok              bool
	}{
		{"/srv", "a.txt", "/srv/a.txt", true},
		{"/srv", "/a/b.txt", "/srv/a/b.txt", true},
		{"/srv", "a//b/./c", "/srv/a/b/c", true},
		{"/srv", "a/../b", "/srv/b", true},
		{"/srv", "", "/srv", true},
		{"/srv", "/", "/srv", true},
		{"/srv", "a/", "/srv/a", true},
		{"/srv", "..", "", false},
		{"/srv", "a/../../etc/passwd", "", false},
		{"/srv", "/../srv2", "", false},
		{"/srv", "a\x00b", "", false},
		{"/", "a/../b", "/b", true},
		{"/", "..", "", false},
		{"/srv", "...", "/srv/...", true},
		{"/srv", "..a/b..", "/srv/..a/b..", true},
	}
	for _, tt := range tests {
		got, ok := AppendJoin([]byte("x:"), tt.base, []byte(tt.rel))
		assert.Equal(t, tt.ok, ok, "%s + %q", tt.base, tt.rel)
		if tt.ok {
			assert.Equal(t, "x:"+tt.want, string(got), "%s + %q", tt.base, tt.rel)
		} else {
			assert.Equal(t, "x:", string(got))
		}
	}
	buf := make([]byte, 0, 64)
	rel := []byte("a/b/../c.html")
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf, _ = AppendJoin(buf[:0], "/srv/www", rel) }))
}

func ExampleParseTemplate() {
	t, err := ParseTemplate("scripts/$1/${name}.lua")
	if err != nil {
		panic(err)
	}
	vals := map[string]string{"1": "v2", "name": "users"}
	out := t.Append(nil, func(name string) []byte { return []byte(vals[name]) })
	fmt.Println(string(out), t.Vars())
	// Output: scripts/v2/users.lua [1 name]
}
