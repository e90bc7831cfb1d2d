package luabind

import (
	"bytes"
	"testing"

	"luaserve/memcached"
)

// FuzzRestyMemcachedKeyEscape checks the default key_transform: any key
// escapes to a valid text-protocol word (no space or control byte) that
// unescapes back to the key, as ngx.escape_uri / ngx.unescape_uri do.
func FuzzRestyMemcachedKeyEscape(f *testing.F) {
	for _, s := range []string{"", "dog", "a b", "100%", "日本語", "+plus", "tab\tnl\n", "%zz", "\x00\xff", "/x?y=z&w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		esc := rmcAppendEscaped(nil, key)
		if !bytes.Equal(esc, EscapeURI(nil, []byte(key), EscapeTypeURIComponent)) {
			t.Fatalf("escape %q: %q differs from EscapeURI", key, esc)
		}
		if got := UnescapeURI(nil, esc); string(got) != key {
			t.Fatalf("unescape(escape(%q)) = %q", key, got)
		}
		if len(esc) > 0 && len(esc) <= memcached.MaxKeyLen {
			if err := memcached.CheckKey(string(esc), true); err != nil {
				t.Fatalf("escaped key %q is not a valid text key: %v", esc, err)
			}
		}
	})
}
