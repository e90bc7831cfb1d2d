package server_test

import (
	"bufio"
	"fmt"
	"net"

	"luaserve/memcached/server"
)

func ExampleStart() {
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0", MaxBytes: 8 << 20})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Fprint(c, "set greeting 0 0 5\r\nhello\r\nget greeting\r\n")
	r := bufio.NewReader(c)
	for range 4 {
		line, _ := r.ReadString('\n')
		fmt.Printf("%q\n", line)
	}
	// Output:
	// "STORED\r\n"
	// "VALUE greeting 0 5\r\n"
	// "hello\r\n"
	// "END\r\n"
}
