// Package memcached is luaserve's Go-native memcached client: the binary and
// text protocol codecs, connections (TCP, unix, TLS, SASL PLAIN), per-server
// idle pools, and a cluster client that spreads keys over servers with
// libmemcached-compatible weighted ketama (or CRC32 modulo).
//
// It knows nothing of Lua or HTTP and uses only the standard library, so it is
// useful from plain Go. The Lua modules in luaserve/luabind are thin bindings
// over it.
//
// Concurrency: a Client and its pools are safe for concurrent use; a single
// checked-out connection is owned by one goroutine at a time.
package memcached
