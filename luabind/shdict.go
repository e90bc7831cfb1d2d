package luabind

import (
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// SharedDict is one lua_shared_dict zone: a process-wide key/value store that
// every VM sees as ngx.shared.NAME. It outlives config generations (the
// engine keeps one per name and hands it to each new generation) and is safe
// for concurrent use.
//
// It follows lua-nginx-module's ngx_http_lua_shdict.c step by step, because
// its quirks are visible from Lua: an LRU queue that every lookup refreshes,
// expired entries removed lazily from the cold end (two per get, set or
// incr; three after flush_all), up to 30 forced evictions per failed
// allocation, and a model of nginx's slab allocator so that capacity,
// free_space and "no memory" match a real zone of the same size. Like
// nginx's zone it is guarded by one lock, held for a map lookup and a few
// pointer moves.
type SharedDict struct {
	name     string
	capacity int64

	mu    sync.Mutex
	items map[string]*shEntry
	lru   shEntry // sentinel: lru.next is the most recently used entry
	slab  shSlab
	now   func() int64 // unix milliseconds
}

// shEntry kinds, as lua-nginx-module's value types.
const (
	shString = iota
	shNumber
	shBool
	shList
)

type shEntry struct {
	prev, next *shEntry
	key        string
	kind       uint8
	str        string   // shString
	num        float64  // shNumber, shBool (0/1)
	list       []shItem // shList, front first
	flags      uint32
	expires    int64 // unix ms; 0 never
	size       int64 // bytes requested from the slab for the node
}

// shItem is a list element: a string or a number.
type shItem struct {
	str   string
	num   float64
	isNum bool
}

// Sizes of lua-nginx-module's structures on 64-bit Linux: a node is
// offsetof(ngx_rbtree_node_t, color) + offsetof(ngx_http_lua_shdict_node_t,
// data) + key + value; a list element is
// offsetof(ngx_http_lua_shdict_list_node_t, data) + value; a list head
// stores an ngx_queue_t as its value.
const (
	shNodeHeader     = 32 + 36
	shListItemHeader = 21
	shQueueSize      = 16
)

func (e *shEntry) valueLen() int64 {
	switch e.kind {
	case shString:
		return int64(len(e.str))
	case shNumber:
		return 8
	case shBool:
		return 1
	}
	return shQueueSize
}

func shNodeSize(key string, valueLen int64) int64 {
	return shNodeHeader + int64(len(key)) + valueLen
}

func shItemSize(it shItem) int64 {
	if it.isNum {
		return shListItemHeader + 8
	}
	return shListItemHeader + int64(len(it.str))
}

// shSlab models nginx's slab allocator (ngx_slab.c) closely enough to
// reproduce free_space and allocation failures: 4 KiB pages, power-of-two
// size classes from 8 to 2048 bytes sharing pages, bigger blocks taking
// whole pages. Freed objects are assumed to compact, so a class uses
// ceil(objects / per-page) pages.
type shSlab struct {
	pages      int64    // usable pages of the zone
	count      [9]int64 // objects per class (8 << i bytes)
	classPages [9]int64 // pages held per class
	large      int64    // pages held by big blocks
}

const (
	shPageSize    = 4096
	shSlabMaxSize = 2048
)

// shPerPage is how many objects of class i fit a page; the three smallest
// classes keep their bitmap inside the page.
var shPerPage = [9]int64{504, 254, 127, 64, 32, 16, 8, 4, 2}

func newShSlab(capacity int64) shSlab {
	// ngx_slab_init: pool header and per-class bookkeeping, then a page
	// descriptor per page, then the pages aligned to 4 KiB.
	const header = 200 + 9*(24+32)
	var sl shSlab
	if capacity <= header {
		return sl
	}
	pages := (capacity - header) / (shPageSize + 24)
	start := (header + pages*24 + shPageSize - 1) / shPageSize * shPageSize
	if over := start + pages*shPageSize - capacity; over > 0 {
		pages -= (over + shPageSize - 1) / shPageSize
	}
	sl.pages = pages
	// lua-nginx-module's shared context (~80 bytes) and the zone's log
	// name (~50 bytes) are allocated when the zone is created.
	sl.alloc(80)
	sl.alloc(50)
	return sl
}

func shClass(size int64) int {
	c, s := 0, int64(8)
	for s < size {
		s <<= 1
		c++
	}
	return c
}

func (sl *shSlab) used() int64 {
	n := sl.large
	for _, p := range sl.classPages {
		n += p
	}
	return n
}

// alloc reports whether size bytes could be allocated, and takes them.
func (sl *shSlab) alloc(size int64) bool {
	if size > shSlabMaxSize {
		need := (size + shPageSize - 1) / shPageSize
		if sl.used()+need > sl.pages {
			return false
		}
		sl.large += need
		return true
	}
	c := shClass(size)
	if sl.count[c] == sl.classPages[c]*shPerPage[c] {
		if sl.used()+1 > sl.pages {
			return false
		}
		sl.classPages[c]++
	}
	sl.count[c]++
	return true
}

func (sl *shSlab) free(size int64) {
	if size > shSlabMaxSize {
		sl.large -= (size + shPageSize - 1) / shPageSize
		return
	}
	c := shClass(size)
	sl.count[c]--
	sl.classPages[c] = (sl.count[c] + shPerPage[c] - 1) / shPerPage[c]
}

// NewSharedDict returns an empty dict of capacity bytes (the size given to
// lua_shared_dict).
func NewSharedDict(name string, capacity int64) *SharedDict {
	d := &SharedDict{name: name, capacity: capacity, items: make(map[string]*shEntry), slab: newShSlab(capacity)}
	d.lru.next, d.lru.prev = &d.lru, &d.lru
	d.now = func() int64 { return time.Now().UnixMilli() }
	return d
}

// Name returns the zone name.
func (d *SharedDict) Name() string { return d.name }

// Capacity returns the zone size in bytes.
func (d *SharedDict) Capacity() int64 { return d.capacity }

// FreeSpace returns the bytes in wholly free pages, as nginx reports it.
func (d *SharedDict) FreeSpace() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return (d.slab.pages - d.slab.used()) * shPageSize
}

func (d *SharedDict) unlink(e *shEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
}

func (d *SharedDict) pushFront(e *shEntry) {
	e.prev = &d.lru
	e.next = d.lru.next
	d.lru.next.prev = e
	d.lru.next = e
}

func (d *SharedDict) touch(e *shEntry) {
	d.unlink(e)
	d.pushFront(e)
}

// remove unlinks e and frees its node and list elements.
func (d *SharedDict) remove(e *shEntry) {
	d.unlink(e)
	delete(d.items, e.key)
	for _, it := range e.list {
		d.slab.free(shItemSize(it))
	}
	d.slab.free(e.size)
}

func (e *shEntry) expired(now int64) bool {
	return e.expires != 0 && e.expires <= now
}

// lookup is ngx_http_lua_shdict_lookup: a found entry moves to the hot end
// whether or not it has expired.
func (d *SharedDict) lookup(key string) *shEntry {
	e := d.items[key]
	if e != nil {
		d.touch(e)
	}
	return e
}

// expireTail is ngx_http_lua_shdict_expire: from the cold end, with n == 1
// it removes up to two expired entries; with n == 0 it first removes one
// entry whatever its state, then up to two expired ones. It returns how
// many it removed.
func (d *SharedDict) expireTail(n int, now int64) int {
	freed := 0
	for ; n < 3; n++ {
		e := d.lru.prev
		if e == &d.lru {
			break
		}
		if n != 0 && !e.expired(now) {
			break
		}
		d.remove(e)
		freed++
	}
	return freed
}

// allocNode allocates size bytes, evicting as nginx does unless safe:
// up to 30 rounds of expireTail(0). forcible reports that a round removed
// something.
func (d *SharedDict) allocNode(size int64, now int64, safe bool) (ok, forcible bool) {
	if d.slab.alloc(size) {
		return true, false
	}
	if safe {
		return false, false
	}
	for i := 0; i < 30; i++ {
		if d.expireTail(0, now) == 0 {
			break
		}
		forcible = true
		if d.slab.alloc(size) {
			return true, true
		}
	}
	return false, forcible
}

func (d *SharedDict) insert(e *shEntry) {
	d.items[e.key] = e
	d.pushFront(e)
}

// shStoreOp selects the semantics of a store.
type shStoreOp uint8

// Store operations, as the Lua methods of the same names.
const (
	shOpSet shStoreOp = iota
	shOpSafeSet
	shOpAdd
	shOpSafeAdd
	shOpReplace
)

// Error strings returned to Lua, verbatim from lua-nginx-module.
const (
	shErrExists   = "exists"
	shErrNotFound = "not found"
	shErrNoMemory = "no memory"
	shErrNotList  = "value not a list"
	shErrIsList   = "value is a list"
	shErrNotNum   = "not a number"
)

// shValue is a scalar dict value.
type shValue struct {
	kind uint8
	str  string
	num  float64
}

func (v shValue) len() int64 {
	switch v.kind {
	case shString:
		return int64(len(v.str))
	case shNumber:
		return 8
	}
	return 1
}

func shExpiresAt(now int64, exptime float64) int64 {
	if exptime <= 0 {
		return 0
	}
	return now + int64(exptime*1000)
}

// store is ngx_http_lua_ffi_shdict_store: set/safe_set/add/safe_add/replace,
// and delete when isNil. It returns ok, the error string and forcible.
func (d *SharedDict) store(op shStoreOp, key string, v shValue, isNil bool, exptime float64, flags uint32) (bool, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expireTail(1, now)
	e := d.lookup(key)
	live := e != nil && !e.expired(now)
	switch op {
	case shOpReplace:
		if !live {
			return false, shErrNotFound, false
		}
	case shOpAdd, shOpSafeAdd:
		if live {
			return false, shErrExists, false
		}
	}
	if e != nil {
		if !isNil && e.kind != shList && e.valueLen() == v.len() {
			// Same size: nginx overwrites the node in place.
			e.kind, e.str, e.num = v.kind, v.str, v.num
			e.flags, e.expires = flags, shExpiresAt(now, exptime)
			return true, "", false
		}
		d.remove(e)
	}
	if isNil {
		return true, "", false
	}
	size := shNodeSize(key, v.len())
	ok, forcible := d.allocNode(size, now, op == shOpSafeSet || op == shOpSafeAdd)
	if !ok {
		return false, shErrNoMemory, forcible
	}
	d.insert(&shEntry{key: key, kind: v.kind, str: v.str, num: v.num, flags: flags, expires: shExpiresAt(now, exptime), size: size})
	return true, "", forcible
}

// get returns the entry's value; found is false for missing keys, stale
// reports an expired entry (returned only when allowStale).
func (d *SharedDict) get(key string, allowStale bool) (v shValue, flags uint32, found, stale bool, err string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if !allowStale {
		d.expireTail(1, now)
	}
	e := d.lookup(key)
	if e == nil {
		return v, 0, false, false, ""
	}
	stale = e.expired(now)
	if stale && !allowStale {
		return v, 0, false, false, ""
	}
	if e.kind == shList {
		return v, 0, false, false, shErrIsList
	}
	return shValue{kind: e.kind, str: e.str, num: e.num}, e.flags, true, stale, ""
}

// incr is ngx_http_lua_ffi_shdict_incr: it adds delta to a number value;
// with hasInit a missing or expired key starts at init (expiring after
// initTTL). It returns the new value, error, forcible.
func (d *SharedDict) incr(key string, delta float64, init float64, hasInit bool, initTTL float64) (float64, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expireTail(1, now)
	e := d.lookup(key)
	if e != nil && !e.expired(now) {
		if e.kind != shNumber {
			return 0, shErrNotNum, false
		}
		e.num += delta
		return e.num, "", false
	}
	if !hasInit {
		return 0, shErrNotFound, false
	}
	if e != nil {
		if e.kind != shList && e.valueLen() == 8 {
			e.kind, e.str, e.num = shNumber, "", init+delta
			e.flags, e.expires = 0, shExpiresAt(now, initTTL)
			return e.num, "", false
		}
		d.remove(e)
	}
	size := shNodeSize(key, 8)
	ok, forcible := d.allocNode(size, now, false)
	if !ok {
		return 0, shErrNoMemory, forcible
	}
	e = &shEntry{key: key, kind: shNumber, num: init + delta, expires: shExpiresAt(now, initTTL), size: size}
	d.insert(e)
	return e.num, "", forcible
}

// push is ngx_http_lua_shdict_push_helper: lists never evict other entries.
// It returns the new length.
func (d *SharedDict) push(key string, it shItem, left bool) (int, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expireTail(1, now)
	e := d.lookup(key)
	if e != nil && e.expired(now) {
		if e.kind != shList {
			d.remove(e)
			e = nil
		} else {
			for _, old := range e.list {
				d.slab.free(shItemSize(old))
			}
			e.list, e.expires = e.list[:0], 0
		}
	}
	if e != nil && e.kind != shList {
		return 0, shErrNotList
	}
	if e == nil {
		size := shNodeSize(key, shQueueSize)
		if !d.slab.alloc(size) {
			return 0, shErrNoMemory
		}
		e = &shEntry{key: key, kind: shList, size: size}
		d.insert(e)
	}
	if !d.slab.alloc(shItemSize(it)) {
		if len(e.list) == 0 {
			d.remove(e)
		}
		return 0, shErrNoMemory
	}
	if left {
		e.list = append(e.list, shItem{})
		copy(e.list[1:], e.list)
		e.list[0] = it
	} else {
		e.list = append(e.list, it)
	}
	return len(e.list), ""
}

func (d *SharedDict) pop(key string, left bool) (shItem, bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.lookup(key)
	if e == nil || e.expired(d.now()) {
		return shItem{}, false, ""
	}
	if e.kind != shList {
		return shItem{}, false, shErrNotList
	}
	var it shItem
	if left {
		it = e.list[0]
		e.list[0] = shItem{}
		e.list = e.list[1:]
	} else {
		it = e.list[len(e.list)-1]
		e.list = e.list[:len(e.list)-1]
	}
	d.slab.free(shItemSize(it))
	if len(e.list) == 0 {
		d.remove(e)
	}
	return it, true, ""
}

func (d *SharedDict) llen(key string) (int, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.lookup(key)
	if e == nil || e.expired(d.now()) {
		return 0, ""
	}
	if e.kind != shList {
		return 0, shErrNotList
	}
	return len(e.list), ""
}

// ttl returns the remaining lifetime in seconds (0: never expires). An
// expired entry not yet removed reports a negative ttl, as in nginx.
func (d *SharedDict) ttl(key string) (float64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	e := d.lookup(key)
	if e == nil {
		return 0, false
	}
	if e.expires == 0 {
		return 0, true
	}
	return float64(e.expires-now) / 1000, true
}

func (d *SharedDict) expire(key string, exptime float64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	e := d.lookup(key)
	if e == nil || e.expired(now) {
		return false
	}
	e.expires = shExpiresAt(now, exptime)
	return true
}

// FlushAll marks every entry expired and, as nginx does, frees only the
// three coldest; the rest go lazily (get_stale may still see them).
func (d *SharedDict) FlushAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for e := d.lru.next; e != &d.lru; e = e.next {
		e.expires = 1
	}
	d.expireTail(0, d.now())
}

// FlushExpired removes up to max expired entries (all when max <= 0),
// coldest first, and returns how many it removed.
func (d *SharedDict) FlushExpired(max int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	n := 0
	for e := d.lru.prev; e != &d.lru; {
		prev := e.prev
		if e.expired(now) {
			d.remove(e)
			n++
			if max > 0 && n >= max {
				break
			}
		}
		e = prev
	}
	return n
}

// Keys returns up to max live keys (all when max <= 0), least recently
// used first, in the order lua-nginx-module walks its queue.
func (d *SharedDict) Keys(max int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var keys []string
	for e := d.lru.prev; e != &d.lru; e = e.prev {
		if e.expired(now) {
			continue
		}
		keys = append(keys, e.key)
		if max > 0 && len(keys) >= max {
			break
		}
	}
	return keys
}

// --- Lua binding ---

const shdictTypeName = "luaserve.shdict"

// registerNgxShared installs ngx.shared: ngx.shared.NAME is the dict that
// dicts(NAME) returns (nil when it returns nil), resolved on first use and
// then kept, so it is the same object for the VM's lifetime.
func registerNgxShared(L *lua.LState, ngx *lua.LTable, dicts func(name string) *SharedDict) {
	mt := L.NewTypeMetatable(shdictTypeName)
	methods := L.SetFuncs(L.NewTable(), shdictMethods)
	L.SetField(mt, "__index", methods)

	shared := L.NewTable()
	smt := L.NewTable()
	// Resolve dicts lazily and remember the userdata, so ngx.shared.X is the
	// same value on every access within a VM.
	L.SetField(smt, "__index", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		name, ok := L.Get(2).(lua.LString)
		if !ok || dicts == nil {
			L.Push(lua.LNil)
			return 1
		}
		d := dicts(string(name))
		if d == nil {
			L.Push(lua.LNil)
			return 1
		}
		// lua-resty-core's dict objects are tables holding the zone
		// userdata at [1]; type(ngx.shared.X) is "table" there too.
		ud := L.NewUserData()
		ud.Value = d
		obj := L.CreateTable(1, 0)
		obj.RawSetInt(1, ud)
		obj.Metatable = mt
		t.RawSetString(string(name), obj)
		L.Push(obj)
		return 1
	}))
	shared.Metatable = smt
	ngx.RawSetString("shared", shared)
}

var shdictMethods = map[string]lua.LGFunction{
	"get":           func(L *lua.LState) int { return shdictGet(L, false) },
	"get_stale":     func(L *lua.LState) int { return shdictGet(L, true) },
	"set":           func(L *lua.LState) int { return shdictStore(L, shOpSet) },
	"safe_set":      func(L *lua.LState) int { return shdictStore(L, shOpSafeSet) },
	"add":           func(L *lua.LState) int { return shdictStore(L, shOpAdd) },
	"safe_add":      func(L *lua.LState) int { return shdictStore(L, shOpSafeAdd) },
	"replace":       func(L *lua.LState) int { return shdictStore(L, shOpReplace) },
	"delete":        shdictDelete,
	"incr":          shdictIncr,
	"lpush":         func(L *lua.LState) int { return shdictPush(L, true) },
	"rpush":         func(L *lua.LState) int { return shdictPush(L, false) },
	"lpop":          func(L *lua.LState) int { return shdictPop(L, true) },
	"rpop":          func(L *lua.LState) int { return shdictPop(L, false) },
	"llen":          shdictLlen,
	"ttl":           shdictTTL,
	"expire":        shdictExpire,
	"flush_all":     shdictFlushAll,
	"flush_expired": shdictFlushExpired,
	"get_keys":      shdictGetKeys,
	"capacity":      shdictCapacity,
	"free_space":    shdictFreeSpace,
}

func shCheckDict(L *lua.LState) *SharedDict {
	if t, ok := L.Get(1).(*lua.LTable); ok {
		if ud, ok := t.RawGetInt(1).(*lua.LUserData); ok {
			if d, ok := ud.Value.(*SharedDict); ok {
				return d
			}
		}
	}
	L.RaiseError(`bad "zone" argument`)
	return nil
}

// shCheckKey validates the key as lua-resty-core does; on a bad key it pushes
// nil, err and returns ok=false.
func shCheckKey(L *lua.LState) (string, bool) {
	var key string
	switch k := L.Get(2).(type) {
	case *lua.LNilType:
		L.Push(lua.LNil)
		L.Push(lua.LString("nil key"))
		return "", false
	case lua.LString:
		key = string(k)
	case lua.LNumber:
		key = ngxFormatNumber(float64(k))
	default:
		key = L.ToStringMeta(k).String()
	}
	if len(key) == 0 {
		L.Push(lua.LNil)
		L.Push(lua.LString("empty key"))
		return "", false
	}
	if len(key) > 65535 {
		L.Push(lua.LNil)
		L.Push(lua.LString("key too long"))
		return "", false
	}
	return key, true
}

func pushShValue(L *lua.LState, v shValue) {
	switch v.kind {
	case shString:
		L.Push(lua.LString(v.str))
	case shNumber:
		L.Push(lua.LNumber(v.num))
	case shBool:
		L.Push(lua.LBool(v.num != 0))
	}
}

func shdictGet(L *lua.LState, stale bool) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	v, flags, found, isStale, err := d.get(key, stale)
	if err != "" {
		return pushNilErr(L, err)
	}
	if !found {
		L.Push(lua.LNil)
		return 1
	}
	pushShValue(L, v)
	var fl lua.LValue = lua.LNil
	if flags != 0 {
		fl = lua.LNumber(int32(flags))
	}
	if stale {
		L.Push(fl)
		L.Push(lua.LBool(isStale))
		return 3
	}
	if flags == 0 {
		return 1
	}
	L.Push(fl)
	return 2
}

func shOptNumber(L *lua.LState, n int, name string) float64 {
	switch v := L.Get(n).(type) {
	case *lua.LNilType:
		return 0
	case lua.LNumber:
		return float64(v)
	default:
		L.RaiseError(`bad "%s" argument`, name)
	}
	return 0
}

// shFlags converts user flags as lua-resty-core's FFI call does: to a C
// int, where values out of range become INT_MIN (x86-64 cvttsd2si).
func shFlags(f float64) uint32 {
	if f != f || f >= 1<<31 || f < -(1<<31) {
		return 1 << 31
	}
	return uint32(int32(f))
}

func pushStoreResult(L *lua.LState, ok bool, err string, forcible bool) int {
	L.Push(lua.LBool(ok))
	if err != "" {
		L.Push(lua.LString(err))
	} else {
		L.Push(lua.LNil)
	}
	L.Push(lua.LBool(forcible))
	return 3
}

func shdictStore(L *lua.LState, op shStoreOp) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	exptime := shOptNumber(L, 4, "exptime")
	if exptime < 0 {
		L.RaiseError(`bad "exptime" argument`)
	}
	flags := shFlags(shOptNumber(L, 5, "flags"))
	var v shValue
	isNil := false
	switch lv := L.Get(3).(type) {
	case lua.LString:
		v = shValue{kind: shString, str: string(lv)}
	case lua.LNumber:
		v = shValue{kind: shNumber, num: float64(lv)}
	case lua.LBool:
		v = shValue{kind: shBool}
		if lv {
			v.num = 1
		}
	case *lua.LNilType:
		isNil = true
	default:
		return pushNilErr(L, "bad value type")
	}
	ok, err, forcible := d.store(op, key, v, isNil, exptime, flags)
	return pushStoreResult(L, ok, err, forcible)
}

func shdictDelete(L *lua.LState) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	ok, err, forcible := d.store(shOpSet, key, shValue{}, true, 0, 0)
	return pushStoreResult(L, ok, err, forcible)
}

// shToNumber is Lua's tonumber for numbers and numeric strings.
func shToNumber(v lua.LValue) (float64, bool) {
	switch lv := v.(type) {
	case lua.LNumber:
		return float64(lv), true
	case lua.LString:
		s := strings.TrimSpace(string(lv))
		if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
			n, err := strconv.ParseUint(h, 16, 64)
			return float64(n), err == nil
		}
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil && !strings.ContainsAny(s, "nN_")
	}
	return 0, false
}

func shdictIncr(L *lua.LState) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	delta, ok := shToNumber(L.Get(3))
	if !ok {
		L.RaiseError("cannot convert 'value' to number")
	}
	var init float64
	hasInit := false
	if iv := L.Get(4); iv != lua.LNil && iv != lua.LFalse {
		if init, ok = shToNumber(iv); !ok {
			L.RaiseError("bad init arg: number expected, got %s", iv.Type().String())
		}
		hasInit = true
	}
	var initTTL float64
	if tv := L.Get(5); tv != lua.LNil {
		n, ok := tv.(lua.LNumber)
		if !ok {
			L.RaiseError("bad init_ttl arg: number expected, got %s", tv.Type().String())
		}
		if n < 0 {
			L.RaiseError("bad init_ttl arg: init_ttl should be greater than 0")
		}
		if !hasInit {
			L.RaiseError(`must provide "init" when providing "init_ttl"`)
		}
		initTTL = float64(n)
	}
	v, err, forcible := d.incr(key, delta, init, hasInit, initTTL)
	if err != "" {
		return pushNilErr(L, err)
	}
	L.Push(lua.LNumber(v))
	if !hasInit {
		return 1
	}
	L.Push(lua.LNil)
	L.Push(lua.LBool(forcible))
	return 3
}

func shdictPush(L *lua.LState, left bool) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	var it shItem
	switch lv := L.Get(3).(type) {
	case lua.LString:
		it = shItem{str: string(lv)}
	case lua.LNumber:
		it = shItem{num: float64(lv), isNum: true}
	default:
		return pushNilErr(L, "bad value type")
	}
	n, err := d.push(key, it, left)
	if err != "" {
		return pushNilErr(L, err)
	}
	L.Push(lua.LNumber(n))
	return 1
}

func shdictPop(L *lua.LState, left bool) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	it, found, err := d.pop(key, left)
	if err != "" {
		return pushNilErr(L, err)
	}
	if !found {
		L.Push(lua.LNil)
		return 1
	}
	if it.isNum {
		L.Push(lua.LNumber(it.num))
	} else {
		L.Push(lua.LString(it.str))
	}
	return 1
}

func shdictLlen(L *lua.LState) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	n, err := d.llen(key)
	if err != "" {
		return pushNilErr(L, err)
	}
	L.Push(lua.LNumber(n))
	return 1
}

func shdictTTL(L *lua.LState) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	t, found := d.ttl(key)
	if !found {
		return pushNilErr(L, shErrNotFound)
	}
	L.Push(lua.LNumber(t))
	return 1
}

func shdictExpire(L *lua.LState) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	n, isNum := L.Get(3).(lua.LNumber)
	if !isNum {
		L.RaiseError(`bad "exptime" argument`)
	}
	if n < 0 {
		L.RaiseError(`bad "exptime" argument`)
	}
	if !d.expire(key, float64(n)) {
		return pushNilErr(L, shErrNotFound)
	}
	L.Push(lua.LTrue)
	return 1
}

func shdictFlushAll(L *lua.LState) int {
	shCheckDict(L).FlushAll()
	return 0
}

func shdictFlushExpired(L *lua.LState) int {
	d := shCheckDict(L)
	max := int(shOptNumber(L, 2, "max_count"))
	L.Push(lua.LNumber(d.FlushExpired(max)))
	return 1
}

func shdictGetKeys(L *lua.LState) int {
	d := shCheckDict(L)
	max := 1024
	if v := L.Get(2); v != lua.LNil {
		n, ok := v.(lua.LNumber)
		if !ok || n < 0 {
			L.RaiseError(`bad "max_count" argument`)
		}
		max = int(n)
	}
	keys := d.Keys(max)
	t := L.CreateTable(len(keys), 0)
	for _, k := range keys {
		t.Append(lua.LString(k))
	}
	L.Push(t)
	return 1
}

func shdictCapacity(L *lua.LState) int {
	L.Push(lua.LNumber(shCheckDict(L).Capacity()))
	return 1
}

func shdictFreeSpace(L *lua.LState) int {
	L.Push(lua.LNumber(shCheckDict(L).FreeSpace()))
	return 1
}
