// Package engine is luaserve's HTTP server: it reads an nginx.conf subset,
// routes requests to server blocks and locations the way nginx does, runs the
// locations' Lua phases in pooled gopher-lua VMs behind fasthttp, and writes
// nginx-style logs.
//
// Lifecycle: an Engine owns its listeners and its current generation (config,
// router, compiled Lua chunks, VM pool) behind an atomic pointer. Reload builds
// a complete new generation before swapping it in; the old one drains, then
// closes. Everything reachable from a fasthttp.RequestCtx lives only for the
// duration of its handler.
package engine
