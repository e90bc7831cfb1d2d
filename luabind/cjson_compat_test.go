package luabind

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lua "github.com/yuin/gopher-lua"
)

const debianCjsonCPath = "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;"

// argNameRe hides the function name in argument errors: LuaJIT names the
// function from its call site ('?' under pcall), we from the module table.
var argNameRe = regexp.MustCompile(`bad argument #(\d+) to '[^']*'`)

func normaliseCompatOutput(s string) string {
	return argNameRe.ReplaceAllString(s, "bad argument #$1 to '?'")
}

// newCompatState is a gopher-lua VM with our modules and a print that formats
// numbers as LuaJIT does, so outputs compare byte for byte.
func newCompatState(out *bytes.Buffer) *lua.LState {
	L := lua.NewState()
	L.PreloadModule("cjson", CjsonLoader)
	L.PreloadModule("cjson.safe", CjsonSafeLoader)
	L.PreloadModule("bit", BitLoader)
	OpenTableExt(L)
	L.SetGlobal("print", L.NewFunction(func(L *lua.LState) int {
		for i := 1; i <= L.GetTop(); i++ {
			if i > 1 {
				out.WriteByte('\t')
			}
			if n, ok := L.Get(i).(lua.LNumber); ok {
				out.Write(AppendLuaNumber(nil, float64(n)))
				continue
			}
			out.WriteString(L.ToStringMeta(L.Get(i)).String())
		}
		out.WriteByte('\n')
		return 0
	}))
	return L
}

func runGopherLua(t *testing.T, path string) string {
	t.Helper()
	var out bytes.Buffer
	L := newCompatState(&out)
	defer L.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	L.SetContext(ctx)
	if err := L.DoFile(path); err != nil {
		out.WriteString("ERROR: " + err.Error() + "\n")
	}
	return out.String()
}

func runLuaJIT(t *testing.T, luajit, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, luajit, path)
	cmd.Env = append(os.Environ(), "LUA_CPATH="+debianCjsonCPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "luajit %s: %s", path, stderr.String())
	return string(out)
}

// TestCjsonCompatLuaJIT runs every snippet in testdata/cjson under LuaJIT
// with Debian's lua-cjson 2.1.0 and under gopher-lua with our modules, and
// requires identical output. The reference interpreter is OpenResty's LuaJIT
// branch (Debian package luajit2; Debian's plain luajit 2.1.0-beta3 snapshot
// differs only in bit.tohex widths above 254 digits).
func TestCjsonCompatLuaJIT(t *testing.T) {
	files, err := filepath.Glob("testdata/cjson/*.lua")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	luajit, err := exec.LookPath("luajit")
	if err != nil {
		t.Skip("luajit not installed: differential test against LuaJIT + lua-cjson skipped")
	}
	if _, err := os.Stat(strings.TrimSuffix(debianCjsonCPath, "?.so;;") + "cjson.so"); err != nil {
		t.Skip("Debian lua-cjson (cjson.so) not installed: differential test skipped")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := runLuaJIT(t, luajit, f)
			require.NotEmpty(t, want, "snippet printed nothing under luajit")
			got := runGopherLua(t, f)
			assert.Equal(t, normaliseCompatOutput(want), normaliseCompatOutput(got))
		})
	}
}
