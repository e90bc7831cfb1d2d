package luabind

import (
	"bytes"
	"testing"
)

// FuzzReceiveUntil checks the receiveuntil matcher against bytes.Split:
// nginx's DFA is a complete KMP automaton, so reading chunk by chunk
// without a size yields exactly the pieces between occurrences of the
// pattern, and sized reads concatenate to the same pieces, whatever the
// size and however the stream arrives.
func FuzzReceiveUntil(f *testing.F) {
	f.Add([]byte("hello, world! -agentzh\r\n--abcedhb blah blah"), []byte("\r\n--abcedhb"), uint8(4), uint8(3))
	f.Add([]byte("aaab-aab-ab"), []byte("aab"), uint8(1), uint8(1))
	f.Add([]byte("abababab--abab"), []byte("abab"), uint8(0), uint8(7))
	f.Add([]byte("xyxyx-xyxxyx"), []byte("xyx"), uint8(2), uint8(0))
	f.Fuzz(func(t *testing.T, data, pat []byte, size, split uint8) {
		if len(pat) == 0 || len(pat) > 64 || len(data) > 4096 {
			return
		}
		want := bytes.Split(data, pat)
		want = want[:len(want)-1] // the tail never sees its pattern
		u := &untilReader{pat: pat, recovering: compileUntil(pat)}
		chunk := int(split)%7 + 1
		var got [][]byte
		var cur, out []byte
		sized := size > 0
		rest := int(size)
		for off := 0; off < len(data); {
			end := min(off+chunk, len(data))
			in := data[off:end]
			for len(in) > 0 {
				n, o, done := u.scan(in, out, &rest, sized)
				in, out = in[n:], o
				off += n
				if !done {
					continue
				}
				if !sized {
					got = append(got, append([]byte(nil), out...))
				} else {
					if len(out) > int(size)+len(pat) {
						t.Fatalf("sized read returned %d bytes, size %d", len(out), size)
					}
					cur = append(cur, out...)
					if u.ended {
						u.ended = false
						got = append(got, cur)
						cur = nil
					}
				}
				out, rest = out[:0], int(size)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("got %d pieces %q, want %d %q", len(got), got, len(want), want)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("piece %d: got %q, want %q", i, got[i], want[i])
			}
		}
	})
}
