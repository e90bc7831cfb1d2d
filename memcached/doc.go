// Package memcached is luaserve's Go-native memcached client: the binary and
// text protocol codecs, connections (TCP, unix, TLS, SASL PLAIN), per-server
// idle pools, and a cluster client that spreads keys over servers with
// libmemcached-compatible weighted ketama (or CRC32 modulo).
//
// It knows nothing of Lua or HTTP and uses only the standard library, so it is
// useful from plain Go. The Lua modules in luaserve/luabind are thin bindings
// over it.
//
// # Layers
//
//   - Codecs (binary.go, text.go): pure functions over bytes. AppendRequest
//     and the Append*Command encoders append to a caller's buffer;
//     ReadResponse, ReadLine and ReadTextValue read from a *bufio.Reader into
//     caller-owned structs whose buffers are reused. A hostile length field
//     costs memory only as its bytes actually arrive.
//   - Conn (conn.go): one connection driven directly, as resty.bmemcached's
//     session and resty.memcached do: Send/Write buffer, Flush writes,
//     Receive/ReadLine/ReadValue read in order. Connect, send and read
//     timeouts are separate. Owned by one goroutine at a time.
//   - Pool and Pools (pool.go): idle connections per server, reused LIFO,
//     closed after the idle time and beyond the size given to Put (lua-resty's
//     set_keepalive(max_idle_ms, pool_size)). Pools is a process-wide
//     registry keyed by any string ("host:port/bucket", resty's opts.pool).
//   - Selectors (ketama.go): KetamaSelector and ModuloSelector map keys to
//     servers and skip servers marked down.
//   - Client (client.go, mux.go): gomemcache-like verbs over a selector. All
//     goroutines share up to ConnsPerServer connections per server (a second
//     opens only when the first is busy): requests are pipelined (one write
//     carries many callers' requests) and replies are matched to callers in
//     order, checked by opaque for the binary protocol. Quiet requests
//     (SetMulti, GetMulti) report their failures to the caller that sent them.
//
// # Connection reuse
//
// One rule, Resumable, decides whether a connection stays usable after an
// error: protocol outcomes (miss, not stored, exists, any binary status, a
// text CLIENT_ERROR/SERVER_ERROR reply read in full, a key refused before
// sending) keep it; timeouts, I/O errors and unparsable replies close it. A
// Conn that saw such an error reports Broken, and Pool.Put closes it. Put
// also closes a connection with a reply left unread or closed by the server.
// The exception is a Mux (the shared transport of the Lua modules): there a
// timeout that comes before any byte of a reply fails only the calls whose
// deadline passed, and the connection reads and drops their replies later.
//
// # Failover
//
// When the Client cannot connect to a server it marks it down for
// RetryInterval (DefaultRetryInterval): its keys go to the next server on
// the ring (next in list order for modulo) and the operation is tried there
// at once. After the interval the next operation for one of its keys tries
// it again; if it answers, its keys move back. When a connection to a live
// server fails with an I/O error, the operation fails, and the server's other
// connections are closed too, so the next operation redials (and fails over
// if the server is gone). DisableFailover keeps keys on their own server.
//
// # Concurrency
//
// Client, Pool, Pools and the selectors are safe for concurrent use. A Conn
// is owned by one goroutine at a time. Values returned by the Client are the
// caller's; slices inside a Response or TextValue are valid only until the
// next read into it.
package memcached
