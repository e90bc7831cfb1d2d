// Package server is an embedded memcached-compatible server for development
// and tests. One listener speaks both protocols: a connection whose first byte
// is 0x80 is binary, anything else is text. It aims to answer exactly as
// memcached 1.6.18 does, quirks included; differences are bugs.
//
// Lifecycle: New → Serve/ListenAndServe → Close. The item store is shared by
// all connections and safe for concurrent use; each connection is served by
// one goroutine that handles every buffered request before it flushes.
package server
