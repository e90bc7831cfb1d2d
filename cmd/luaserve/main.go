// Command luaserve serves HTTP with Lua handlers configured through an
// nginx.conf subset. Its flags are nginx's:
//
//	luaserve [-p prefix] [-c file] [-t] [-s reload|stop|quit] [-v|-V] [-hot-reload=false]
//	luaserve memcached [-l addr] [-m megabytes] [-I item-size] [-S user:password]
//	luaserve [-p prefix] test [-memcached host:port] [-v] [paths…]
//	luaserve version
//
// Signals: SIGHUP reloads the config, SIGTERM/SIGINT stop at once, SIGQUIT
// stops gracefully (in-flight requests finish).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"luaserve/engine"
	"luaserve/luabind"
	"luaserve/memcached/server"
)

// Version is luaserve's version; the build may override it with -ldflags.
var Version = "0.1.0"

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1 // config error, failed to start, failed to signal
	exitUsage  = 2
	gracefulTO = 60 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintf(stdout, "luaserve version %s (nginx/%s compatible, lua-nginx-module 0.10)\n", Version, luabind.NginxVersion)
			return exitOK
		case "memcached":
			return runMemcached(args[1:], stderr)
		case "test":
			return runSpecs(".", args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("luaserve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prefix := fs.String("p", ".", "set prefix path")
	conf := fs.String("c", "conf/nginx.conf", "set configuration file (relative to the prefix)")
	test := fs.Bool("t", false, "test configuration and exit")
	sig := fs.String("s", "", "send signal to the running instance: reload, stop, quit")
	v := fs.Bool("v", false, "show version and exit")
	V := fs.Bool("V", false, "show version and configure options then exit")
	hotReload := fs.Bool("hot-reload", true, "reload when the config, a script or a module changes (as lua_hot_reload on)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: luaserve [-p prefix] [-c file] [-t] [-s signal] [-v|-V]\n"+
			"       luaserve [-p prefix] test [-memcached host:port] [-v] [paths...]\n"+
			"       luaserve memcached [-l addr] [-m megabytes]\n"+
			"       luaserve version\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *v || *V {
		fmt.Fprintf(stderr, "luaserve version: luaserve/%s (nginx/%s compatible)\n", Version, luabind.NginxVersion)
		if *V {
			fmt.Fprintf(stderr, "built with gopher-lua (Lua 5.1), fasthttp\nconfigure arguments: --prefix=%s\n", *prefix)
		}
		return exitOK
	}
	confPath := *conf
	if !filepath.IsAbs(confPath) {
		confPath = filepath.Join(*prefix, confPath)
	}
	if rest := fs.Args(); len(rest) > 0 && rest[0] == "test" {
		return runSpecs(*prefix, rest[1:], stdout, stderr)
	}
	if *sig != "" {
		return signalRunning(*prefix, *conf, *sig, stderr)
	}
	if *test {
		cfg, err := engine.Load(*prefix, *conf)
		if err != nil {
			fmt.Fprintf(stderr, "luaserve: [emerg] %v\nluaserve: configuration file %s test failed\n", err, confPath)
			return exitError
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "luaserve: [warn] %s in %s:%d\n", w.Msg, w.File, w.Line)
		}
		fmt.Fprintf(stderr, "luaserve: the configuration file %s syntax is ok\nluaserve: configuration file %s test is successful\n", confPath, confPath)
		return exitOK
	}
	return serve(*prefix, *conf, *hotReload, stderr)
}

func serve(prefix, conf string, hotReload bool, stderr io.Writer) int {
	// LUASERVE_CPUPROFILE=file profiles the whole run (benchmarks use it
	// to see where a route's time goes under load).
	if path := os.Getenv("LUASERVE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(stderr, "luaserve: [emerg] LUASERVE_CPUPROFILE: %v\n", err)
			return exitError
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "luaserve: [emerg] LUASERVE_CPUPROFILE: %v\n", err)
			return exitError
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	e, err := engine.New(engine.Options{Prefix: prefix, ConfFile: conf, NoHotReload: !hotReload})
	if err != nil {
		fmt.Fprintf(stderr, "luaserve: [emerg] %v\n", err)
		return exitError
	}
	if err := e.Start(); err != nil {
		fmt.Fprintf(stderr, "luaserve: [emerg] %v\n", err)
		e.Shutdown(context.Background(), false) //nolint:errcheck // already failing
		return exitError
	}
	log := e.ErrorLog()
	log.Logf(luabind.LogNotice, "luaserve/%s started, listening on %s", Version, strings.Join(e.Addrs(), ", "))
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	for s := range sigs {
		switch s {
		case syscall.SIGHUP:
			log.Logf(luabind.LogNotice, "signal %d (SIGHUP) received, reconfiguring", s)
			e.Reload() //nolint:errcheck // logged; the old generation keeps serving
		case syscall.SIGQUIT:
			log.Logf(luabind.LogNotice, "signal %d (SIGQUIT) received, shutting down gracefully", s)
			ctx, cancel := context.WithTimeout(context.Background(), gracefulTO)
			err := e.Shutdown(ctx, true)
			cancel()
			if err != nil {
				return exitError
			}
			return exitOK
		default:
			log.Logf(luabind.LogNotice, "signal %d (%s) received, exiting", s, s)
			e.Shutdown(context.Background(), false) //nolint:errcheck // exiting
			return exitOK
		}
	}
	return exitOK
}

// signalRunning implements -s: it reads the pid file the config names and
// signals that process.
func signalRunning(prefix, conf, sig string, stderr io.Writer) int {
	signals := map[string]syscall.Signal{"reload": syscall.SIGHUP, "stop": syscall.SIGTERM, "quit": syscall.SIGQUIT, "reopen": syscall.SIGUSR1}
	s, ok := signals[sig]
	if !ok {
		fmt.Fprintf(stderr, "luaserve: invalid option: \"-s %s\"\n", sig)
		return exitUsage
	}
	cfg, err := engine.Load(prefix, conf)
	if err != nil {
		fmt.Fprintf(stderr, "luaserve: [emerg] %v\n", err)
		return exitError
	}
	raw, err := os.ReadFile(cfg.PidFile)
	if err != nil {
		fmt.Fprintf(stderr, "luaserve: [error] open() \"%s\" failed (%v)\n", cfg.PidFile, err)
		return exitError
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		fmt.Fprintf(stderr, "luaserve: [error] invalid PID number \"%s\" in \"%s\"\n", strings.TrimSpace(string(raw)), cfg.PidFile)
		return exitError
	}
	if err := syscall.Kill(pid, s); err != nil {
		fmt.Fprintf(stderr, "luaserve: [error] kill(%d, %d) failed (%v)\n", pid, s, err)
		return exitError
	}
	return exitOK
}

func runMemcached(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("luaserve memcached", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("l", "127.0.0.1:11211", "listen address (host:port or unix:/path)")
	mb := fs.Int64("m", 64, "memory limit in megabytes")
	item := fs.Int("I", 1<<20, "maximum item size in bytes")
	sasl := fs.String("S", "", "require SASL PLAIN with user:password")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	cfg := server.Config{Addr: *addr, MaxBytes: *mb << 20, MaxItemSize: *item}
	if *sasl != "" {
		user, pass, ok := strings.Cut(*sasl, ":")
		if !ok {
			fmt.Fprintln(stderr, "luaserve memcached: -S wants user:password")
			return exitUsage
		}
		cfg.SASLUser, cfg.SASLPassword = user, pass
	}
	s, err := server.Start(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "luaserve memcached: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stderr, "luaserve memcached listening on %s (%d MB)\n", s.Addr(), *mb)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	<-sigs
	s.Close()
	return exitOK
}

// runSpecs runs Lua specs (busted style) inside a real engine: exit 1 when
// a spec failed, 2 when they could not run at all.
func runSpecs(prefix string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("luaserve test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mc := fs.String("memcached", "", "run against this memcached (host:port) instead of the embedded one")
	verbose := fs.Bool("v", false, "list passing tests too")
	timeout := fs.Duration("timeout", engine.DefaultSpecTimeout, "time limit per spec file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	_, failed, err := engine.RunSpecs(engine.SpecOptions{
		Paths: fs.Args(), Prefix: prefix, Memcached: *mc, Out: stdout, Verbose: *verbose, Timeout: *timeout,
	})
	if err != nil {
		fmt.Fprintf(stderr, "luaserve test: %v\n", err)
		return exitUsage
	}
	if failed > 0 {
		return exitError
	}
	return exitOK
}
