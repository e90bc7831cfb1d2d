package server

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"luaserve/internal/mctest"
	"luaserve/memcached"
)

const (
	saslUser = "user"
	saslPass = "pass"
)

func saslAuth(mech, data string) req { return breq(memcached.OpSASLAuth, mech, nil, data) }

func saslCases() []wireCase {
	noop := breq(memcached.OpNoop, "", nil, "")
	version := breq(memcached.OpVersion, "", nil, "")
	get := breq(memcached.OpGet, "k", nil, "")
	good := "\x00" + saslUser + "\x00" + saslPass
	return []wireCase{
		{name: "list", bin: true, steps: []step{b(breq(memcached.OpSASLList, "", nil, "").withOpaque(1), version.withOpaque(2))}},
		{name: "unauthenticated get", bin: true, steps: []step{b(get.withOpaque(3), version)}},
		{name: "unauthenticated noop", bin: true, steps: []step{b(noop)}},
		{name: "unauthenticated stat", bin: true, steps: []step{b(breq(memcached.OpStat, "", nil, ""))}},
		{name: "unauthenticated verbosity", bin: true, steps: []step{b(breq(memcached.OpVerbosity, "", nil, ""))}},
		{name: "auth ok", bin: true, steps: []step{
			b(saslAuth("PLAIN", good).withOpaque(4), get.withOpaque(5), breq(memcached.OpSetQ, "k", setExtras(0, 0), "v"), get, noop),
		}},
		{name: "auth with authzid", bin: true, steps: []step{b(saslAuth("PLAIN", saslUser+good), noop)}},
		{name: "auth lowercase mech", bin: true, steps: []step{b(saslAuth("plain", good), noop)}},
		{name: "auth bad password", bin: true, steps: []step{b(saslAuth("PLAIN", "\x00user\x00bad").withOpaque(4), noop.withOpaque(5))}},
		{name: "auth retry", bin: true, steps: []step{
			b(saslAuth("PLAIN", "\x00user\x00bad"), saslAuth("PLAIN", good), noop),
		}},
		{name: "auth unknown mech", bin: true, steps: []step{b(saslAuth("FOO", good), version, noop)}},
		{name: "step without start", bin: true, steps: []step{b(breq(memcached.OpSASLStep, "PLAIN", nil, good), version, noop)}},
		{name: "step after failed start", bin: true, steps: []step{
			b(saslAuth("PLAIN", "\x00user\x00bad"), breq(memcached.OpSASLStep, "PLAIN", nil, good), noop),
		}},
		{name: "auth long mech", bin: true, steps: []step{b(saslAuth(strings.Repeat("P", 40), good), version, noop)}},
		{name: "auth garbage", bin: true, steps: []step{b(saslAuth("PLAIN", "garbage"), noop)}},
		{name: "auth empty then step", bin: true, steps: []step{
			b(saslAuth("PLAIN", "")),
			b(breq(memcached.OpSASLStep, "PLAIN", nil, good), noop),
		}},
		{name: "text is refused", steps: []step{s("version\r\nget a\r\nset a 0 0 1\r\n1\r\n")}},
	}
}

// TestWireSASL runs the SASL cases against memcached -S backed by a sasldb
// holding user/pass, and against the embedded server with the same
// credentials.
func TestWireSASL(t *testing.T) {
	pw, err := exec.LookPath("saslpasswd2")
	if err != nil {
		t.Skip("saslpasswd2 not installed (apt-get install sasl2-bin): cannot give memcached -S a user")
	}
	if !haveBinary(mctest.Binary) {
		t.Skipf("%s not installed", mctest.Binary)
	}
	// memcached drops to nobody, who must reach the config and the db:
	// t.TempDir's parent is private, so make a world-readable one.
	dir, err := os.MkdirTemp("", "mcsasl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	db := filepath.Join(dir, "sasldb2")
	cmd := exec.Command(pw, "-p", "-a", "memcached", "-f", db, "-c", saslUser)
	cmd.Stdin = strings.NewReader(saslPass)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Chmod(db, 0o644))
	conf := "mech_list: plain\nsasldb_path: " + db + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "memcached.conf"), []byte(conf), 0o644))
	t.Setenv("SASL_CONF_PATH", dir)

	for _, tc := range saslCases() {
		t.Run(tc.name, func(t *testing.T) {
			real := mctest.Real(t, "-S")
			emb := startEmbedded(t, Config{SASLUser: saslUser, SASLPassword: saslPass})
			want := converse(t, real.Addr, tc.steps)
			got := converse(t, emb.Addr().String(), tc.steps)
			norm := normText
			if tc.bin {
				norm = normBinary
			}
			for i := range tc.steps {
				require.Equal(t, norm([]byte(want[i])), norm([]byte(got[i])), "step %d", i)
			}
		})
	}
}

// TestSASLEmbedded checks the embedded server's SASL on its own, so it is
// covered where memcached or the SASL tools are missing.
func TestSASLEmbedded(t *testing.T) {
	emb := startEmbedded(t, Config{SASLUser: saslUser, SASLPassword: saslPass})
	good := "\x00" + saslUser + "\x00" + saslPass
	tests := []struct {
		name string
		send []req
		want []memcached.Status
		eof  bool
	}{
		{"rejects before auth", []req{breq(memcached.OpGet, "k", nil, "")}, []memcached.Status{wireAuthError}, true},
		{"version allowed", []req{breq(memcached.OpVersion, "", nil, "")}, []memcached.Status{memcached.StatusNoError}, false},
		{"good password", []req{saslAuth("PLAIN", good), breq(memcached.OpGet, "k", nil, "")},
			[]memcached.Status{memcached.StatusNoError, memcached.StatusKeyNotFound}, false},
		{"bad password", []req{saslAuth("PLAIN", "\x00user\x00nope"), breq(memcached.OpGet, "k", nil, "")},
			[]memcached.Status{wireAuthError, wireAuthError}, true},
		{"wrong user", []req{saslAuth("PLAIN", "\x00bob\x00"+saslPass)}, []memcached.Status{wireAuthError}, false},
		{"other authzid", []req{saslAuth("PLAIN", "bob"+good)}, []memcached.Status{wireAuthError}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, emb.Addr().String())
			_, err := c.Write(pkts(tt.send...))
			require.NoError(t, err)
			got := readIdle(t, c, 150*time.Millisecond)
			var sts []memcached.Status
			rest := got
			for len(rest) >= memcached.HeaderLen && rest[0] == memcached.MagicResponse {
				sts = append(sts, memcached.Status(uint16(rest[6])<<8|uint16(rest[7])))
				bl := int(uint32(rest[8])<<24 | uint32(rest[9])<<16 | uint32(rest[10])<<8 | uint32(rest[11]))
				rest = rest[memcached.HeaderLen+bl:]
			}
			require.Equal(t, tt.want, sts)
			require.Equal(t, tt.eof, string(rest) == "<EOF>", "rest %q", rest)
		})
	}
}
