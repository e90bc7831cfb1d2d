package memcached_test

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"luaserve/memcached"
)

// Keys spread over a weighted server list exactly as libmemcached's weighted
// ketama spreads them (these three were checked against libmemcached).
func ExampleNewKetama() {
	servers, err := memcached.ParseServers([]string{
		"10.0.0.1:11211 2", // twice the share of the others
		"10.0.0.2:11211",
		"10.0.0.3:11212",
	})
	if err != nil {
		panic(err)
	}
	ring, err := memcached.NewKetama(servers)
	if err != nil {
		panic(err)
	}
	for _, key := range []string{"user:1", "user:2", "session:abc"} {
		i, _ := ring.Pick(key)
		fmt.Println(key, "->", servers[i].Addr)
	}
	// Output:
	// user:1 -> 10.0.0.2:11211
	// user:2 -> 10.0.0.2:11211
	// session:abc -> 10.0.0.3:11212
}

// A binary request is appended to a caller's buffer; no allocation when the
// buffer is large enough.
func ExampleAppendRequest() {
	req := memcached.Request{
		Opcode: memcached.OpSet,
		Key:    "Hello",
		Value:  []byte("World"),
		Extras: memcached.AppendStoreExtras(nil, 0xdeadbeef, 3600),
		Opaque: 1,
	}
	pkt := memcached.AppendRequest(make([]byte, 0, 64), &req)
	fmt.Printf("% x\n", pkt[:memcached.HeaderLen])
	fmt.Printf("% x\n", pkt[memcached.HeaderLen:memcached.HeaderLen+8])
	fmt.Printf("%s\n", pkt[memcached.HeaderLen+8:])
	// Output:
	// 80 01 00 05 08 00 00 00 00 00 00 12 00 00 00 01 00 00 00 00 00 00 00 00
	// de ad be ef 00 00 0e 10
	// HelloWorld
}

// Text protocol commands are built with append-style encoders, and replies
// parsed without copying.
func ExampleReadTextValue() {
	cmd := memcached.AppendStorageCommand(nil, "set", "greeting", 5, 0, []byte("hi"), 0, false)
	fmt.Printf("%q\n", cmd)

	reply := bufio.NewReader(strings.NewReader("VALUE greeting 5 2 42\r\nhi\r\nEND\r\n"))
	var v memcached.TextValue
	for {
		ok, err := memcached.ReadTextValue(reply, &v, 0)
		if err != nil || !ok {
			break
		}
		fmt.Printf("%s=%s flags=%d cas=%d\n", v.Key, v.Value, v.Flags, v.CAS)
	}
	// Output:
	// "set greeting 5 0 2\r\nhi\r\n"
	// greeting=hi flags=5 cas=42
}

// Server error replies keep the server's words, for callers that hand them
// back verbatim as lua-resty-memcached does.
func ExampleParseStorageReply() {
	for _, line := range []string{"STORED", "NOT_STORED", "SERVER_ERROR object too large for cache"} {
		err := memcached.ParseStorageReply([]byte(line))
		var se *memcached.ServerError
		switch {
		case err == nil:
			fmt.Println("stored")
		case errors.As(err, &se):
			fmt.Println(se.Line(), errors.Is(err, memcached.ErrValueTooLarge))
		default:
			fmt.Println(err)
		}
	}
	// Output:
	// stored
	// memcached: item not stored
	// SERVER_ERROR object too large for cache true
}
