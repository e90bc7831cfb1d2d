// Command ceiling is the plain-Go upper bound of `make bench`: the bench
// routes served by fasthttp and luaserve/memcached with no Lua in the path.
// What luaserve adds on top of this (VM, bindings, cjson) is the gap between
// its row and this one in the bench table.
//
//	ceiling -listen 127.0.0.1:PORT -memcached 127.0.0.1:MPORT
//	ceiling -memcached 127.0.0.1:MPORT -preload 10000 -value-size 1024
//
// Routes (same semantics as scripts/bench/{luaserve,openresty}/lua/bench.lua):
//
//	/hello                   "hello\n"
//	/test_b1?key=K&value=V   set + get, the result encoded like resty.bmemcached's table
//	/test_b1_pool?key=K&value=V  the same over a connection checked out for the request
//	/read?k=N                the value of bench_N (404 on a miss)
//	/json  (POST)            decode the body, count+1, processed=true, encode
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"luaserve/memcached"
)

// KeyPrefix names the read route's preloaded keys: bench_0 … bench_N-1.
const KeyPrefix = "bench_"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// FreePorts returns n distinct loopback ports the kernel had free: all n
// listeners are open at once so no port repeats, then closed for the caller
// to bind (the usual small race with other processes remains).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
	memc := fs.String("memcached", "127.0.0.1:11211", "memcached address")
	preload := fs.Int("preload", 0, "store `N` values bench_0 … bench_N-1, then exit")
	valueSize := fs.Int("value-size", 1024, "size of each preloaded value in bytes")
	freePorts := fs.Int("free-ports", 0, "print `N` distinct free loopback TCP ports, then exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *freePorts > 0 {
		ports, err := FreePorts(*freePorts)
		if err != nil {
			fmt.Fprintf(stderr, "ceiling: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, strings.Trim(fmt.Sprint(ports), "[]"))
		return 0
	}
	c, err := memcached.New(memcached.Config{Servers: []string{*memc}})
	if err != nil {
		fmt.Fprintf(stderr, "ceiling: %v\n", err)
		return 1
	}
	defer c.Close()
	if *preload > 0 {
		if err := Preload(c, *preload, *valueSize); err != nil {
			fmt.Fprintf(stderr, "ceiling: preload: %v\n", err)
			return 1
		}
		return 0
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "ceiling: %v\n", err)
		return 1
	}
	h := NewHandler(c, *memc)
	defer h.Close()
	srv := &fasthttp.Server{
		Handler:                      h.Serve,
		Name:                         "ceiling",
		NoDefaultContentType:         true,
		ReadBufferSize:               8 << 10,
		DisablePreParseMultipartForm: true,
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	go func() {
		<-sigs
		srv.Shutdown() //nolint:errcheck // exiting anyway
	}()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(stderr, "ceiling: %v\n", err)
		return 1
	}
	return 0
}

// Value is the preloaded value of key bench_i: size bytes, distinct per key,
// so a read that returns the wrong key's value is visible.
func Value(i, size int) []byte {
	v := make([]byte, size)
	tag := strconv.Itoa(i)
	for j := range v {
		if j%16 < len(tag) {
			v[j] = tag[j%16]
		} else {
			v[j] = 'a' + byte(j%26)
		}
	}
	return v
}

// Preload stores bench_0 … bench_n-1 with Value(i, size), from a few
// goroutines so 10,000 keys take well under a second, then reads one back.
func Preload(c *memcached.Client, n, size int) error {
	const workers = 8
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := c.Set(&memcached.Item{Key: KeyPrefix + strconv.Itoa(i), Value: Value(i, size)}); err != nil {
					errs <- fmt.Errorf("set %s%d: %w", KeyPrefix, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	last := n - 1
	it, err := c.Get(KeyPrefix + strconv.Itoa(last))
	if err != nil {
		return fmt.Errorf("get %s%d: %w", KeyPrefix, last, err)
	}
	if string(it.Value) != string(Value(last, size)) {
		return fmt.Errorf("get %s%d: value differs from what was stored", KeyPrefix, last)
	}
	return nil
}

// Handler serves the bench routes over one memcached client, and the
// /test_b1_pool variant over a pool of connections to its first server.
type Handler struct {
	c    *memcached.Client
	pool *memcached.Pool
}

// NewHandler returns a Handler using c, which it does not close, and a pool
// to addr, which Close closes.
func NewHandler(c *memcached.Client, addr string) *Handler {
	return &Handler{c: c, pool: memcached.NewPool(addr, nil)}
}

// Close closes the pool's connections.
func (h *Handler) Close() error { return h.pool.Close() }

var (
	hello         = []byte("hello\n")
	typeJSON      = []byte("application/json")
	typeText      = []byte("text/plain")
	errMissingArg = errors.New("missing argument")
)

// Serve dispatches on the path; anything else is 404.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/hello":
		ctx.Response.Header.SetContentTypeBytes(typeText)
		ctx.Response.SetBodyRaw(hello)
	case "/test_b1":
		h.testB1(ctx)
	case "/test_b1_pool":
		h.testB1Pool(ctx)
	case "/read":
		h.read(ctx)
	case "/json":
		h.json(ctx)
	default:
		ctx.Error("not found\n", fasthttp.StatusNotFound)
	}
}

// testB1 is the seed route: set, get, and the result encoded as
// resty.bmemcached's cjson.encode(r) prints it, so it writes the same bytes
// luaserve does.
func (h *Handler) testB1(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	key, value := args.Peek("key"), args.Peek("value")
	if key == nil || value == nil {
		fail(ctx, fasthttp.StatusBadRequest, errMissingArg)
		return
	}
	k := string(key)
	// Set keeps no reference to the Item's bytes past the call, so the
	// value may alias the request buffer.
	if err := h.c.Set(&memcached.Item{Key: k, Value: value}); err != nil {
		fail(ctx, fasthttp.StatusInternalServerError, err)
		return
	}
	it, err := h.c.Get(k)
	if err != nil {
		fail(ctx, fasthttp.StatusInternalServerError, err)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(typeText)
	bp := scratch.Get().(*[]byte)
	*bp = AppendSeedJSON((*bp)[:0], it)
	ctx.Response.SetBody(*bp) // copies into the response's own buffer
	scratch.Put(bp)
}

// scratch holds the seed route's encode buffers: SetBody copies, so one
// buffer per concurrently running handler is enough.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Keepalive settings of /test_b1_pool, as set_keepalive(10000, 100).
const (
	poolIdle = 10 * time.Second
	poolSize = 100
)

// testB1Pool is the seed route driven the way a resty.bmemcached session (or
// lua-resty-memcached) drives memcached: a connection of its own for the
// request, one round trip per operation, back to the pool at the end. Its
// distance to /test_b1 (operations of all requests pipelined onto shared
// connections) is what that I/O pattern costs, apart from any Lua.
func (h *Handler) testB1Pool(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	key, value := args.Peek("key"), args.Peek("value")
	if key == nil || value == nil {
		fail(ctx, fasthttp.StatusBadRequest, errMissingArg)
		return
	}
	k := string(key)
	// memcached answers a bad key and then hangs up, so it never leaves here.
	if err := memcached.CheckKey(k, false); err != nil {
		fail(ctx, fasthttp.StatusInternalServerError, err)
		return
	}
	// Not ctx: a RequestCtx as a parent context costs a goroutine per
	// derived context (it is no cancelCtx), and the dial has its own timeout.
	conn, err := h.pool.Get(context.Background())
	if err != nil {
		fail(ctx, fasthttp.StatusInternalServerError, err)
		return
	}
	var ex [8]byte
	var resp memcached.Response
	err = conn.RoundTrip(&memcached.Request{Opcode: memcached.OpSet, Key: k, Extras: memcached.AppendStoreExtras(ex[:0], 0, 0), Value: value}, &resp)
	if err == nil {
		err = resp.Err()
	}
	if err == nil {
		err = conn.RoundTrip(&memcached.Request{Opcode: memcached.OpGet, Key: k}, &resp)
	}
	if err == nil {
		err = resp.Err()
	}
	if err != nil {
		h.pool.Put(conn, poolIdle, poolSize) // Put closes a broken connection
		fail(ctx, fasthttp.StatusInternalServerError, err)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(typeText)
	bp := scratch.Get().(*[]byte)
	// resp.Value aliases the connection's buffer: encode before Put.
	*bp = AppendSeedJSON((*bp)[:0], &memcached.Item{Value: resp.Value, CAS: resp.CAS})
	h.pool.Put(conn, poolIdle, poolSize)
	ctx.Response.SetBody(*bp)
	scratch.Put(bp)
}

// AppendSeedJSON appends the JSON resty.bmemcached's get result encodes to
// (header first, CAS as its 8 big-endian bytes) and a newline, as ngx.say
// would.
func AppendSeedJSON(dst []byte, it *memcached.Item) []byte {
	dst = append(dst, `{"header":{"opaque":0,"CAS":[`...)
	var cas [8]byte
	binary.BigEndian.PutUint64(cas[:], it.CAS)
	for i, b := range cas {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, uint64(b), 10)
	}
	dst = append(dst, `],"status_code":0,"status":"No error","type":0},"value":`...)
	dst = appendJSONString(dst, it.Value)
	return append(dst, "}\n"...)
}

// appendJSONString quotes s as cjson does (it also escapes '/').
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\' || c == '/':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20 || c == 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func (h *Handler) read(ctx *fasthttp.RequestCtx) {
	k := ctx.QueryArgs().Peek("k")
	if k == nil {
		fail(ctx, fasthttp.StatusBadRequest, errMissingArg)
		return
	}
	it, err := h.c.Get(KeyPrefix + string(k))
	if errors.Is(err, memcached.ErrCacheMiss) {
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return
	}
	if err != nil {
		fail(ctx, fasthttp.StatusInternalServerError, err)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(typeText)
	ctx.Response.SetBodyRaw(it.Value)
}

// json decodes into generic values, as cjson does, so every field of the
// document survives the round trip.
func (h *Handler) json(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	var doc map[string]any
	if err := json.Unmarshal(ctx.PostBody(), &doc); err != nil {
		fail(ctx, fasthttp.StatusBadRequest, err)
		return
	}
	count, _ := doc["count"].(float64)
	doc["count"] = count + 1
	doc["processed"] = true
	out, err := json.Marshal(doc)
	if err != nil {
		fail(ctx, fasthttp.StatusInternalServerError, err)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(typeJSON)
	ctx.Response.SetBodyRaw(append(out, '\n'))
}

func fail(ctx *fasthttp.RequestCtx, status int, err error) {
	ctx.Error(err.Error()+"\n", status)
}
