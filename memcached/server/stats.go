package server

import (
	"net"
	"slices"
	"strconv"
	"syscall"
	"time"

	"luaserve/memcached"
)

// stat is one name/value pair of a stats reply.
type stat struct {
	name, value string
}

// General stats in memcached 1.6.18's order. Counters memcached keeps for
// machinery we do not have (slab mover, extstore, LRU segments, logger) are
// reported as constants so that tools parsing the list find every name.
func (s *Server) generalStats() []stat {
	c, items, bytes := s.st.snapshot()
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) string {
		return strconv.FormatInt(int64(t.Sec), 10) + "." + pad6(int64(t.Usec))
	}
	curr := s.currConns.Load()
	return []stat{
		{"pid", strconv.Itoa(s.pid)},
		{"uptime", strconv.FormatInt(int64(time.Since(s.started)/time.Second), 10)},
		{"time", strconv.FormatInt(time.Now().Unix(), 10)},
		{"version", Version},
		{"libevent", "2.1.12-stable"},
		{"pointer_size", "64"},
		{"rusage_user", tv(ru.Utime)},
		{"rusage_system", tv(ru.Stime)},
		{"max_connections", "1024"},
		{"curr_connections", strconv.FormatInt(curr, 10)},
		{"total_connections", u(s.totalConns.Load())},
		{"rejected_connections", "0"},
		{"connection_structures", strconv.FormatInt(curr+1, 10)},
		{"response_obj_oom", "0"},
		{"response_obj_count", "1"},
		{"response_obj_bytes", "65536"},
		{"read_buf_count", "8"},
		{"read_buf_bytes", "131072"},
		{"read_buf_bytes_free", "49152"},
		{"read_buf_oom", "0"},
		{"reserved_fds", "20"},
		{"cmd_get", u(c.getCmds)},
		{"cmd_set", u(c.setCmds)},
		{"cmd_flush", u(c.flushCmds)},
		{"cmd_touch", u(c.touchCmds)},
		{"cmd_meta", "0"},
		{"get_hits", u(c.getHits)},
		{"get_misses", u(c.getMisses)},
		{"get_expired", u(c.getExpired)},
		{"get_flushed", u(c.getFlushed)},
		{"delete_misses", u(c.deleteMisses)},
		{"delete_hits", u(c.deleteHits)},
		{"incr_misses", u(c.incrMisses)},
		{"incr_hits", u(c.incrHits)},
		{"decr_misses", u(c.decrMisses)},
		{"decr_hits", u(c.decrHits)},
		{"cas_misses", u(c.casMisses)},
		{"cas_hits", u(c.casHits)},
		{"cas_badval", u(c.casBadval)},
		{"touch_hits", u(c.touchHits)},
		{"touch_misses", u(c.touchMisses)},
		{"store_too_large", u(c.storeTooLarge)},
		{"store_no_memory", u(c.storeNoMemory)},
		{"auth_cmds", u(c.authCmds)},
		{"auth_errors", u(c.authErrors)},
		{"bytes_read", u(s.bytesRead.Load())},
		{"bytes_written", u(s.bytesWrit.Load())},
		{"limit_maxbytes", strconv.FormatInt(s.cfg.maxBytes(), 10)},
		{"accepting_conns", "1"},
		{"listen_disabled_num", "0"},
		{"time_in_listen_disabled_us", "0"},
		{"threads", "4"},
		{"conn_yields", "0"},
		{"hash_power_level", "16"},
		{"hash_bytes", "524288"},
		{"hash_is_expanding", "0"},
		{"slab_reassign_rescues", "0"},
		{"slab_reassign_chunk_rescues", "0"},
		{"slab_reassign_evictions_nomem", "0"},
		{"slab_reassign_inline_reclaim", "0"},
		{"slab_reassign_busy_items", "0"},
		{"slab_reassign_busy_deletes", "0"},
		{"slab_reassign_running", "0"},
		{"slabs_moved", "0"},
		{"lru_crawler_running", "0"},
		{"lru_crawler_starts", "1"},
		{"lru_maintainer_juggles", "0"},
		{"malloc_fails", "0"},
		{"log_worker_dropped", "0"},
		{"log_worker_written", "0"},
		{"log_watcher_skipped", "0"},
		{"log_watcher_sent", "0"},
		{"log_watchers", "0"},
		{"unexpected_napi_ids", "0"},
		{"round_robin_fallback", "0"},
		{"bytes", strconv.FormatInt(bytes, 10)},
		{"curr_items", strconv.Itoa(items)},
		{"total_items", u(c.totalItems)},
		{"slab_global_page_pool", "0"},
		{"expired_unfetched", u(c.expiredUnfetched)},
		{"evicted_unfetched", "0"},
		{"evicted_active", "0"},
		{"evictions", u(c.evictions)},
		{"reclaimed", u(c.reclaimed)},
		{"crawler_reclaimed", "0"},
		{"crawler_items_checked", "0"},
		{"lrutail_reflocked", "0"},
		{"moves_to_cold", "0"},
		{"moves_to_warm", "0"},
		{"moves_within_lru", "0"},
		{"direct_reclaims", "0"},
		{"lru_bumps_dropped", "0"},
	}
}

func pad6(v int64) string {
	s := strconv.FormatInt(v, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// settingsStats is "stats settings" in memcached 1.6.18's order.
func (s *Server) settingsStats() []stat {
	proto := "auto-negotiate"
	if s.cfg.sasl() {
		proto = "binary"
	}
	s.st.mu.Lock()
	oldest := s.st.oldestLive
	s.st.mu.Unlock()
	return []stat{
		{"maxbytes", strconv.FormatInt(s.cfg.maxBytes(), 10)},
		{"maxconns", "1024"},
		{"tcpport", strconv.Itoa(s.port())},
		{"udpport", "0"},
		{"inter", "127.0.0.1"},
		{"verbosity", strconv.FormatUint(uint64(s.verbosity.Load()), 10)},
		{"oldest", strconv.FormatInt(oldest, 10)},
		{"evictions", "on"},
		{"domain_socket", "NULL"},
		{"umask", "700"},
		{"shutdown_command", "no"},
		{"growth_factor", "1.25"},
		{"chunk_size", "48"},
		{"num_threads", "4"},
		{"num_threads_per_udp", "4"},
		{"stat_key_prefix", ":"},
		{"detail_enabled", "no"},
		{"reqs_per_event", "20"},
		{"cas_enabled", "yes"},
		{"tcp_backlog", "1024"},
		{"binding_protocol", proto},
		{"auth_enabled_sasl", yesNo(s.cfg.sasl())},
		{"auth_enabled_ascii", "no"},
		{"item_size_max", strconv.Itoa(s.cfg.maxItemSize())},
		{"maxconns_fast", "yes"},
		{"hashpower_init", "0"},
		{"slab_reassign", "yes"},
		{"slab_automove", "1"},
		{"slab_automove_ratio", "0.80"},
		{"slab_automove_window", "30"},
		{"slab_chunk_max", strconv.Itoa(s.cfg.maxItemSize() / 2)},
		{"lru_crawler", "yes"},
		{"lru_crawler_sleep", "100"},
		{"lru_crawler_tocrawl", "0"},
		{"tail_repair_time", "0"},
		{"flush_enabled", "yes"},
		{"dump_enabled", "yes"},
		{"hash_algorithm", "murmur3"},
		{"lru_maintainer_thread", "yes"},
		{"lru_segmented", "yes"},
		{"hot_lru_pct", "20"},
		{"warm_lru_pct", "40"},
		{"hot_max_factor", "0.20"},
		{"warm_max_factor", "2.00"},
		{"temp_lru", "no"},
		{"temporary_ttl", "61"},
		{"idle_timeout", "0"},
		{"watcher_logbuf_size", "262144"},
		{"worker_logbuf_size", "65536"},
		{"read_buf_mem_limit", "0"},
		{"track_sizes", "no"},
		{"inline_ascii_response", "no"},
		{"ext_item_size", "512"},
		{"ext_item_age", "4294967295"},
		{"ext_low_ttl", "0"},
		{"ext_recache_rate", "2000"},
		{"ext_wbuf_size", "4194304"},
		{"ext_compact_under", "0"},
		{"ext_drop_under", "0"},
		{"ext_max_sleep", "1000000"},
		{"ext_max_frag", "0.80"},
		{"slab_automove_freeratio", "0.010"},
		{"ext_drop_unread", "no"},
		{"ssl_enabled", "no"},
		{"ssl_chain_cert", "(null)"},
		{"ssl_key", "(null)"},
		{"ssl_verify_mode", "0"},
		{"ssl_keyformat", "1"},
		{"ssl_ciphers", "NULL"},
		{"ssl_ca_cert", "NULL"},
		{"ssl_wbuf_size", "16384"},
		{"ssl_session_cache", "no"},
		{"ssl_kernel_tls", "no"},
		{"ssl_min_version", "tlsv1.2"},
		{"num_napi_ids", "(null)"},
		{"memory_file", "(null)"},
	}
}

// itemsStats is "stats items" for the one item class we keep.
func (s *Server) itemsStats() []stat {
	c, items, bytes := s.st.snapshot()
	if items == 0 {
		return nil
	}
	p := "items:1:"
	n := strconv.Itoa(items)
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	return []stat{
		{p + "number", n}, {p + "number_hot", "0"}, {p + "number_warm", "0"},
		{p + "number_cold", n}, {p + "age_hot", "0"}, {p + "age_warm", "0"},
		{p + "age", "0"}, {p + "mem_requested", strconv.FormatInt(bytes, 10)},
		{p + "evicted", u(c.evictions)}, {p + "evicted_nonzero", "0"},
		{p + "evicted_time", "0"}, {p + "outofmemory", "0"}, {p + "tailrepairs", "0"},
		{p + "reclaimed", u(c.reclaimed)}, {p + "expired_unfetched", "0"},
		{p + "evicted_unfetched", "0"}, {p + "evicted_active", "0"},
		{p + "crawler_reclaimed", "0"}, {p + "crawler_items_checked", "0"},
		{p + "lrutail_reflocked", "0"}, {p + "moves_to_cold", "0"},
		{p + "moves_to_warm", "0"}, {p + "moves_within_lru", "0"},
		{p + "direct_reclaims", "0"}, {p + "hits_to_hot", "0"},
		{p + "hits_to_warm", "0"}, {p + "hits_to_cold", "0"}, {p + "hits_to_temp", "0"},
	}
}

// slabsStats is "stats slabs": one pseudo class holding every item.
func (s *Server) slabsStats() []stat {
	c, items, bytes := s.st.snapshot()
	if items == 0 {
		return []stat{{"active_slabs", "0"}, {"total_malloced", "0"}}
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	n := strconv.Itoa(items)
	return []stat{
		{"1:chunk_size", "96"}, {"1:chunks_per_page", "10922"}, {"1:total_pages", "1"},
		{"1:total_chunks", "10922"}, {"1:used_chunks", n}, {"1:free_chunks", "0"},
		{"1:free_chunks_end", "0"}, {"1:get_hits", u(c.getHits)}, {"1:cmd_set", u(c.setCmds)},
		{"1:delete_hits", u(c.deleteHits)}, {"1:incr_hits", u(c.incrHits)},
		{"1:decr_hits", u(c.decrHits)}, {"1:cas_hits", u(c.casHits)},
		{"1:cas_badval", u(c.casBadval)}, {"1:touch_hits", u(c.touchHits)},
		{"active_slabs", "1"}, {"total_malloced", strconv.FormatInt(bytes, 10)},
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	if a.Network() == "unix" {
		return "unix:" + a.String()
	}
	return "tcp:" + a.String()
}

// connsStats is "stats conns": the listeners, then every connection, keyed
// by an id standing in for memcached's file descriptor.
func (c *conn) connsStats() []stat {
	s := c.s
	now := time.Now().Unix()
	since := func(t int64) string { return strconv.FormatInt(now-t, 10) }
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []stat
	lid := firstConnID - 1
	for _, l := range s.lns {
		p := strconv.Itoa(lid) + ":"
		list = append(list, stat{p + "addr", addrString(l.Addr())}, stat{p + "state", "conn_listening"},
			stat{p + "secs_since_last_cmd", since(s.started.Unix())})
		lid--
	}
	conns := make([]*conn, 0, len(s.conns))
	for o := range s.conns {
		conns = append(conns, o)
	}
	slices.SortFunc(conns, func(a, b *conn) int { return a.id - b.id })
	for _, o := range conns {
		p := strconv.Itoa(o.id) + ":"
		state := "conn_waiting"
		if o == c {
			state = "conn_parse_cmd"
		}
		list = append(list, stat{p + "addr", addrString(o.nc.RemoteAddr())},
			stat{p + "listen_addr", addrString(o.nc.LocalAddr())},
			stat{p + "state", state}, stat{p + "secs_since_last_cmd", since(o.lastCmd.Load())})
	}
	return list
}

func (c *conn) textStatList(list []stat) {
	for _, st := range list {
		c.out = append(c.out, "STAT "...)
		c.out = append(c.out, st.name...)
		c.out = append(c.out, ' ')
		c.out = append(c.out, st.value...)
		c.out = append(c.out, crlf...)
	}
	c.out = append(c.out, rEnd...)
}

// textStats is process_stat.
func (c *conn) textStats(n int) {
	s := c.s
	if n == 1 {
		c.textStatList(s.generalStats())
		return
	}
	switch string(c.toks[1]) {
	case "reset":
		s.st.resetStats()
		c.out = append(c.out, rReset...)
	case "detail":
		if n < 3 {
			c.out = append(c.out, rDetailUsage...)
			return
		}
		switch string(c.toks[2]) {
		case "on", "off":
			c.out = append(c.out, rOK...)
		case "dump":
			c.out = append(c.out, rEnd...)
		default:
			c.out = append(c.out, rDetailUsage...)
		}
	case "settings":
		c.textStatList(s.settingsStats())
	case "items":
		c.textStatList(s.itemsStats())
	case "slabs":
		c.textStatList(s.slabsStats())
	case "sizes":
		c.textStatList([]stat{{"sizes_status", "disabled"}})
	case "conns":
		c.textStatList(c.connsStats())
	default:
		c.out = append(c.out, rError...)
	}
}

func (c *conn) binStat(h *reqHeader, name, value string) {
	c.binHeader(h, memcached.StatusNoError, 0, len(name), len(name)+len(value), 0)
	c.out = append(c.out, name...)
	c.out = append(c.out, value...)
}

// binStats is process_bin_stat; every list ends with an empty stat.
func (c *conn) binStats(h *reqHeader, key []byte) {
	s := c.s
	var list []stat
	hasPrefix := func(p string) bool { return len(key) >= len(p) && string(key[:len(p)]) == p }
	switch {
	case len(key) == 0:
		list = s.generalStats()
	case hasPrefix("reset"):
		s.st.resetStats()
	case hasPrefix("settings"):
		list = s.settingsStats()
	case hasPrefix("detail"):
		switch {
		case hasPrefix("detail dump"):
			list = []stat{{"detailed", ""}}
		case hasPrefix("detail on"), hasPrefix("detail off"):
		default:
			c.binError(h, memcached.StatusKeyNotFound, 0)
			return
		}
	case string(key) == "items":
		list = s.itemsStats()
	case string(key) == "slabs":
		list = s.slabsStats()
	case string(key) == "sizes":
		list = []stat{{"sizes_status", "disabled"}}
	default:
		c.binError(h, memcached.StatusKeyNotFound, 0)
		return
	}
	for _, st := range list {
		c.binStat(h, st.name, st.value)
	}
	c.binHeader(h, memcached.StatusNoError, 0, 0, 0, 0)
}
