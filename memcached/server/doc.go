// Package server is an embedded memcached-compatible server for development
// and tests. One listener speaks both protocols: a connection whose first byte
// is 0x80 is binary, anything else is text (with SASL on, only binary is
// spoken, as with memcached -S). It answers as Debian's memcached 1.6.18
// does, quirks included; differences are bugs, and the differential tests in
// this package hold the two side by side.
//
// Lifecycle: New, then Serve on listeners (or Start, which listens on
// Config.Addr), then Close, which stops the listeners, closes every
// connection and waits for all goroutines. A Server from New must be closed
// even if it never served: it runs a background expiry sweep.
//
// Concurrency: the item store is shared by all connections behind one mutex;
// each connection is served by one goroutine that handles every buffered
// request, then writes the replies at once. Like memcached it also writes
// after every 20 requests and after each text get, which decides what a
// later error may discard from the unsent replies.
//
// Memory: items are charged memcached's own item size (header, CAS, key,
// value, CRLF, flags) against Config.MaxBytes and evicted least recently
// used first; memcached's slab classes are not imitated, so evictions start
// at the same total but not always with the same victim. Expired items are
// dropped when touched and by a sweep every second.
//
// Not implemented: the meta commands other than mn, and the text commands
// for memcached's machinery (slabs, lru, lru_crawler, watch, extstore,
// cache_memlimit, "stats cachedump"), which answer ERROR.
package server
