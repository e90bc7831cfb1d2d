package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// underscores_in_headers decides per server whether a request header named
// with '_' reaches Lua (nginx drops it by default); http level is inherited.
func TestUnderscoresInHeaders(t *testing.T) {
	s := startEngine(t, `
	underscores_in_headers on;
	server {
		listen 127.0.0.1:0;
		server_name on.test;
		location / { content_by_lua_block {
			local h = ngx.req.get_headers()
			ngx.say(tostring(ngx.var.http_x_under), " ", tostring(h.x_under), " ", tostring(h["x-under"]))
		} }
	}
	server {
		listen 127.0.0.1:0;
		server_name off.test;
		underscores_in_headers off;
		location / { content_by_lua_block {
			local h = ngx.req.get_headers()
			ngx.say(tostring(ngx.var.http_x_under), " ", tostring(h.x_under))
		} }
	}`, map[string]string{})
	code, body, _ := s.do(t, "GET", "/", "", "Host", "on.test", "X_Under", "u")
	require.Equal(t, 200, code)
	// get_headers' metatable reads h["x-under"] as "x-under" only: the
	// header keeps its '_'.
	assert.Equal(t, "u u nil\n", body)
	code, body, _ = s.do(t, "GET", "/", "", "Host", "off.test", "X_Under", "u")
	require.Equal(t, 200, code)
	assert.Equal(t, "nil nil\n", body)
}

func TestUnderscoresInHeadersConfig(t *testing.T) {
	_, _, err := load(t, "http { server { underscores_in_headers maybe; } }", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `it must be "on" or "off"`)
	_, _, err = load(t, "http { server { location / { underscores_in_headers on; } } }", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not allowed here")
	cfg := mustLoad(t, "http { underscores_in_headers on; server { } server { underscores_in_headers off; } }", nil)
	assert.True(t, cfg.HTTP.Servers[0].Loc.UnderscoresInHeaders)
	assert.False(t, cfg.HTTP.Servers[1].Loc.UnderscoresInHeaders)
}
