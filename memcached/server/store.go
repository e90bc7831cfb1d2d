package server

import (
	"sync"
	"time"
	"unsafe"

	"luaserve/memcached"
)

// Sizes memcached 1.6 charges an item with on a 64-bit build: the item
// header, the CAS field, and the key's NUL terminator. The value also carries
// its "\r\n" and non-zero flags take 4 more bytes. Using the same formula
// makes the item size limit match memcached byte for byte.
const (
	itemHeaderSize = 48
	itemCASSize    = 8
	// updateInterval is memcached's ITEM_UPDATE_INTERVAL: an access bumps
	// an item's time at most this often.
	updateInterval = 60
	// startOffset mirrors memcached's process_started, set this far in the
	// past so that relative time 1 ("already expired") is always in the past.
	startOffset = updateInterval + 2
)

// itemSize is memcached's item_make_header + CAS for a value of n bytes.
func itemSize(nkey int, flags uint32, n int64) int64 {
	s := int64(itemHeaderSize+itemCASSize+nkey+1) + n + 2
	if flags != 0 {
		s += 4
	}
	return s
}

// item is one stored value. Fields are guarded by store.mu.
type item struct {
	key   string
	value []byte // without the trailing "\r\n"
	flags uint32
	exp   int64 // relative time; 0 never expires
	time  int64 // relative time of last link or bump, for flush_all
	cas   uint64
	size  int64

	prev, next *item // LRU list, head is most recent
}

// storeResult is memcached's store_item_type.
type storeResult int

const (
	resStored storeResult = iota
	resNotStored
	resExists
	resNotFound
	resTooLarge
	resNoMemory
)

// storeMode is memcached's NREAD_* command for store_item.
type storeMode int

const (
	modeSet storeMode = iota
	modeAdd
	modeReplace
	modeAppend
	modePrepend
	modeCAS
)

// deltaResult is memcached's delta_result_type.
type deltaResult int

const (
	deltaOK deltaResult = iota
	deltaNonNumeric
	deltaNoMemory
	deltaNotFound
	deltaCASMismatch
)

// counters are the store-side stats; guarded by store.mu.
type counters struct {
	getCmds, getHits, getMisses, getExpired, getFlushed uint64
	touchCmds, touchHits, touchMisses                   uint64
	setCmds, flushCmds                                  uint64
	deleteHits, deleteMisses                            uint64
	incrHits, incrMisses, decrHits, decrMisses          uint64
	casHits, casMisses, casBadval                       uint64
	storeTooLarge, storeNoMemory                        uint64
	authCmds, authErrors                                uint64
	evictions, reclaimed, expiredUnfetched, totalItems  uint64
}

// store is the item table shared by every connection: one mutex over a map
// and an LRU list. memcached's slab allocator is not imitated; memory is
// charged per item with memcached's item size formula and the least recently
// used items are evicted when the total would exceed maxBytes.
type store struct {
	mu       sync.Mutex
	items    map[string]*item
	head     *item
	tail     *item
	bytes    int64
	maxBytes int64
	maxItem  int64

	casID      uint64
	oldestLive int64
	oldestCAS  uint64

	started int64        // unix seconds matching relative time 0
	now     func() int64 // unix seconds; replaced by tests
	stats   counters
}

func newStore(maxBytes int64, maxItem int, now func() int64) *store {
	if now == nil {
		now = func() int64 { return time.Now().Unix() }
	}
	return &store{
		items:    make(map[string]*item),
		maxBytes: maxBytes,
		maxItem:  int64(maxItem),
		now:      now,
		started:  now() - startOffset,
	}
}

// current is memcached's current_time: seconds since started.
func (s *store) current() int64 { return s.now() - s.started }

// realtime converts a protocol exptime to relative time the way memcached's
// realtime() does: 0 never expires, more than 30 days is a unix time, and a
// unix time at or before the start maps to 1 (already expired).
func (s *store) realtime(exptime int64) int64 {
	if exptime == 0 {
		return 0
	}
	if exptime > memcached.RelativeExpiryLimit {
		if exptime <= s.started {
			return 1
		}
		return exptime - s.started
	}
	return exptime + s.current()
}

// textExptime is EXPTIME_TO_POSITIVE_TIME: a negative text exptime becomes
// an absolute time in 1970, which has always passed.
func textExptime(e int32) int64 {
	if e < 0 {
		return memcached.RelativeExpiryLimit + 1
	}
	return int64(e)
}

func (s *store) nextCAS() uint64 {
	s.casID++
	return s.casID
}

// sizeOK is memcached's item_size_ok for a value of n bytes (without CRLF).
func (s *store) sizeOK(nkey int, flags uint32, n int64) bool {
	return n >= 0 && itemSize(nkey, flags, n) <= s.maxItem
}

func (s *store) unlinkLRU(it *item) {
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		s.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		s.tail = it.prev
	}
	it.prev, it.next = nil, nil
}

func (s *store) pushFront(it *item) {
	it.next = s.head
	it.prev = nil
	if s.head != nil {
		s.head.prev = it
	}
	s.head = it
	if s.tail == nil {
		s.tail = it
	}
}

func (s *store) unlink(it *item) {
	s.unlinkLRU(it)
	delete(s.items, it.key)
	s.bytes -= it.size
}

// link inserts it, replacing any item under the same key.
func (s *store) link(it *item) {
	if old, ok := s.items[it.key]; ok {
		s.unlink(old)
	}
	it.time = s.current()
	s.items[it.key] = it
	s.pushFront(it)
	s.bytes += it.size
	s.stats.totalItems++
}

func (s *store) flushed(it *item, now int64) bool {
	if s.oldestLive == 0 || s.oldestLive > now {
		return false
	}
	return it.time <= s.oldestLive || (s.oldestCAS != 0 && it.cas != 0 && it.cas < s.oldestCAS)
}

// lookup is do_item_get: it finds a live item, dropping it on the way if it
// has expired or was flushed. update bumps it in the LRU.
func (s *store) lookup(key []byte, update bool) *item {
	it, ok := s.items[string(key)]
	if !ok {
		return nil
	}
	now := s.current()
	if s.flushed(it, now) {
		s.unlink(it)
		s.stats.getFlushed++
		return nil
	}
	if it.exp != 0 && it.exp <= now {
		s.unlink(it)
		s.stats.getExpired++
		return nil
	}
	if update {
		s.bump(it, now)
	}
	return it
}

func (s *store) bump(it *item, now int64) {
	if it.time < now-updateInterval {
		it.time = now
	}
	if s.head != it {
		s.unlinkLRU(it)
		s.pushFront(it)
	}
}

// makeRoom evicts from the LRU tail until size more bytes fit. It reports
// false when the item can never fit.
func (s *store) makeRoom(size int64) bool {
	if size > s.maxBytes {
		return false
	}
	now := s.current()
	for s.bytes+size > s.maxBytes && s.tail != nil {
		victim := s.tail
		if (victim.exp != 0 && victim.exp <= now) || s.flushed(victim, now) {
			s.stats.reclaimed++
		} else {
			s.stats.evictions++
		}
		s.unlink(victim)
	}
	return true
}

// newItem allocates an unlinked item holding a copy of value, or nil when
// memory cannot be found for it.
func (s *store) newItem(key []byte, flags uint32, exp int64, value []byte) *item {
	size := itemSize(len(key), flags, int64(len(value)))
	if !s.makeRoom(size) {
		return nil
	}
	return makeItem(key, flags, exp, size, value, nil)
}

// makeItem builds an item whose key and value share one allocation; the key
// string aliases bytes that are never written again (only the value part is,
// by incr/decr in place).
func makeItem[K string | []byte](key K, flags uint32, exp, size int64, v1, v2 []byte) *item {
	nk, nv := len(key), len(v1)+len(v2)
	buf := make([]byte, nk+nv)
	copy(buf, key)
	copy(buf[nk+copy(buf[nk:], v1):], v2)
	it := &item{value: buf[nk : nk+nv : nk+nv], flags: flags, exp: exp, size: size}
	if nk > 0 {
		it.key = unsafe.String(&buf[0], nk)
	}
	return it
}

// store is do_store_item. cas is the request's CAS (0 for none); on success
// the stored item's CAS is returned.
func (s *store) store(mode storeMode, key []byte, flags uint32, exp int64, value []byte, cas uint64) (storeResult, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.setCmds++
	old := s.lookup(key, false)
	if old == nil {
		switch mode {
		case modeSet, modeAdd:
		case modeCAS:
			s.stats.casMisses++
			return resNotFound, 0
		default:
			return resNotStored, 0
		}
		it := s.newItem(key, flags, exp, value)
		if it == nil {
			s.stats.storeNoMemory++
			return resNoMemory, 0
		}
		it.cas = s.nextCAS()
		s.link(it)
		return resStored, it.cas
	}
	var it *item
	switch mode {
	case modeAdd:
		s.bump(old, s.current())
		return resNotStored, 0
	case modeCAS:
		if cas == 0 || cas != old.cas {
			s.stats.casBadval++
			return resExists, 0
		}
		s.stats.casHits++
	case modeAppend, modePrepend:
		if cas != 0 && cas != old.cas {
			return resExists, 0
		}
		// Appending keeps the old item's flags and expiry.
		total := int64(len(old.value) + len(value))
		if !s.sizeOK(len(key), old.flags, total) {
			return resNotStored, 0
		}
		size := itemSize(len(key), old.flags, total)
		if !s.makeRoom(size - old.size) {
			return resNotStored, 0
		}
		if s.items[old.key] != old { // evicted while making room
			return resNotStored, 0
		}
		if mode == modeAppend {
			it = makeItem(key, old.flags, old.exp, size, old.value, value)
		} else {
			it = makeItem(key, old.flags, old.exp, size, value, old.value)
		}
	}
	if it == nil {
		s.unlink(old)
		it = s.newItem(key, flags, exp, value)
		if it == nil {
			s.stats.storeNoMemory++
			return resNoMemory, 0
		}
	}
	it.cas = s.nextCAS()
	s.link(it)
	return resStored, it.cas
}

func (s *store) countSet() {
	s.mu.Lock()
	s.stats.setCmds++
	s.mu.Unlock()
}

func (s *store) countFlush() {
	s.mu.Lock()
	s.stats.flushCmds++
	s.mu.Unlock()
}

// countDeltaMiss records an incr/decr on a missing key that was not
// answered by creating it.
func (s *store) countDeltaMiss(incr bool) {
	s.mu.Lock()
	if incr {
		s.stats.incrMisses++
	} else {
		s.stats.decrMisses++
	}
	s.mu.Unlock()
}

func (s *store) countAuth(ok bool) {
	s.mu.Lock()
	s.stats.authCmds++
	if !ok {
		s.stats.authErrors++
	}
	s.mu.Unlock()
}

// tooLarge records a rejected oversized store. Like memcached, a too-large
// set also deletes the key so that a stale value does not survive.
func (s *store) tooLarge(key []byte, isSet, count bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if count {
		s.stats.storeTooLarge++
	}
	if isSet {
		if it := s.lookup(key, false); it != nil {
			s.unlink(it)
		}
	}
}

// get looks key up for a get or gat command and calls fn with the item
// while the store is locked; fn must not keep it.
func (s *store) get(key []byte, touch bool, exp int64, fn func(*item)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.lookup(key, true)
	// memcached counts a gat as a touch only, not as a get.
	if touch {
		s.stats.touchCmds++
	} else {
		s.stats.getCmds++
	}
	if it == nil {
		if touch {
			s.stats.touchMisses++
		} else {
			s.stats.getMisses++
		}
		return false
	}
	if touch {
		it.exp = exp
		s.stats.touchHits++
	} else {
		s.stats.getHits++
	}
	fn(it)
	return true
}

// touch is item_touch for the touch command; fn sees the item when found.
func (s *store) touch(key []byte, exp int64, fn func(*item)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.lookup(key, true)
	s.stats.touchCmds++
	if it == nil {
		s.stats.touchMisses++
		return false
	}
	s.stats.touchHits++
	it.exp = exp
	if fn != nil {
		fn(it)
	}
	return true
}

// delete removes key when cas is 0 or matches; it returns resStored on
// success, resNotFound or resExists.
func (s *store) delete(key []byte, cas uint64) storeResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.lookup(key, false)
	if it == nil {
		s.stats.deleteMisses++
		return resNotFound
	}
	if cas != 0 && cas != it.cas {
		return resExists
	}
	s.stats.deleteHits++
	s.unlink(it)
	return resStored
}

// delta is do_add_delta. The result is written as decimal into buf (which
// must hold 20 bytes) and returned. Like memcached, a result that fits is
// written in place, padded with spaces to the old length, unless the item is
// still referenced by an unsent reply (held), in which case a new item of
// exactly the result's length replaces it.
func (s *store) delta(key []byte, incr bool, d uint64, cas uint64, buf []byte, held func(*item) bool) (deltaResult, uint64, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.lookup(key, false)
	if it == nil {
		return deltaNotFound, 0, buf[:0]
	}
	// memcached cannot parse empty values, nor values big enough to be
	// stored in chunks (over half the item size limit).
	if len(it.value) == 0 || it.size > s.maxItem/2 {
		return deltaNonNumeric, 0, buf[:0]
	}
	if cas != 0 && it.cas != cas {
		return deltaCASMismatch, 0, buf[:0]
	}
	v, ok := parseValueUint(it.value)
	if !ok {
		return deltaNonNumeric, 0, buf[:0]
	}
	if incr {
		v += d
		s.stats.incrHits++
	} else {
		if d > v {
			v = 0
		} else {
			v -= d
		}
		s.stats.decrHits++
	}
	out := appendUint(buf[:0], v)
	now := s.current()
	if len(out) <= len(it.value) && (held == nil || !held(it)) {
		// Readers only touch values under s.mu, so rewriting in place is safe.
		n := copy(it.value, out)
		for i := n; i < len(it.value); i++ {
			it.value[i] = ' '
		}
		it.cas = s.nextCAS()
		s.bump(it, now)
		return deltaOK, it.cas, out
	}
	size := itemSize(len(key), it.flags, int64(len(out)))
	if !s.makeRoom(size - it.size) {
		return deltaNoMemory, 0, buf[:0]
	}
	ni := makeItem(key, it.flags, it.exp, size, out, nil)
	ni.cas = s.nextCAS()
	s.link(ni)
	return deltaOK, ni.cas, out
}

// addInitial stores the binary incr/decr initial value for a missing key.
func (s *store) addInitial(key []byte, value []byte, exp int64) (storeResult, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lookup(key, false) != nil {
		return resNotStored, 0
	}
	it := s.newItem(key, 0, exp, value)
	if it == nil {
		return resNoMemory, 0
	}
	it.cas = s.nextCAS()
	s.link(it)
	return resStored, it.cas
}

// flush is flush_all: items last stored at or before the deadline become
// invisible once it passes. delay <= 0 flushes now.
func (s *store) flush(delay int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.flushCmds++
	now := s.current()
	newOldest := now
	if delay > 0 {
		newOldest = s.realtime(delay)
	}
	s.oldestLive = newOldest - 1
	if s.oldestLive <= now {
		s.oldestCAS = s.nextCAS()
	}
}

// reap drops expired and flushed items; the server calls it periodically so
// that memory is returned even for keys nobody reads again.
func (s *store) reap(budget int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.current()
	for it := s.tail; it != nil && budget > 0; budget-- {
		prev := it.prev
		if (it.exp != 0 && it.exp <= now) || s.flushed(it, now) {
			s.unlink(it)
			s.stats.reclaimed++
		}
		it = prev
	}
}

// snapshot returns a copy of the counters and the item totals.
func (s *store) snapshot() (c counters, items int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats, len(s.items), s.bytes
}

func (s *store) resetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = counters{}
}

// parseValueUint is safe_strtoull over a stored value followed by memcached's
// implicit "\r\n": leading whitespace and a sign are accepted, the digits
// must end at whitespace or the end, and a negative number is refused.
func parseValueUint(v []byte) (uint64, bool) {
	return strtoull(v)
}
