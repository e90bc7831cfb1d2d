// Package luabind is everything Lua sees: the ngx API, cjson, bit, and the
// memcached modules (resty.bmemcached, resty.memcached, memcached), all as
// hand-written lua.LGFunctions.
//
// It does not import engine: a VM sees the request it serves through the
// Request type and the Host interface, which engine implements. A VM (one
// *lua.LState) serves one request at a time; process-wide state (shared
// dicts, memcached pools) lives in Go objects safe for concurrent use.
package luabind
