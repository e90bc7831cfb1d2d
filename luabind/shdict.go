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
// engine keeps one per name and hands it to each new generation), is bounded
// by its capacity in bytes with least-recently-used eviction, and is safe for
// concurrent use. Like nginx's zone it is guarded by one lock; every
// operation holds it for a map lookup and a few pointer moves.
type SharedDict struct {
	name     string
	capacity int64

	mu    sync.Mutex
	used  int64
	items map[string]*shEntry
	lru   shEntry // sentinel: lru.next is the most recently used entry
	now   func() int64
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
	listBytes  int64
	flags      uint32
	expires    int64 // unix ms; 0 never
	cost       int64
}

// shItem is a list element: a string or a number.
type shItem struct {
	str   string
	num   float64
	isNum bool
}

// Size model: nginx allocates each node from a slab allocator — an rbtree
// node header plus lua-nginx-module's node header plus key and value,
// rounded up to a power of two for small sizes and to whole pages beyond.
const (
	shNodeOverhead = 72
	shListOverhead = 32
	shPageSize     = 4096
)

func shSlabSize(n int64) int64 {
	if n > shPageSize/2 {
		return (n + shPageSize - 1) / shPageSize * shPageSize
	}
	s := int64(8)
	for s < n {
		s <<= 1
	}
	return s
}

// NewSharedDict returns an empty dict of capacity bytes (the size given to
// lua_shared_dict).
func NewSharedDict(name string, capacity int64) *SharedDict {
	d := &SharedDict{name: name, capacity: capacity, items: make(map[string]*shEntry)}
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
	free := d.capacity - d.used
	d.mu.Unlock()
	if free < 0 {
		return 0
	}
	return free / shPageSize * shPageSize
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

func (d *SharedDict) remove(e *shEntry) {
	d.unlink(e)
	delete(d.items, e.key)
	d.used -= e.cost
}

func (e *shEntry) expired(now int64) bool {
	return e.expires != 0 && e.expires <= now
}

// lookup returns the live entry for key; expired entries count as missing
// (they stay until evicted, so get_stale can still see them).
func (d *SharedDict) lookup(key string, now int64) *shEntry {
	e := d.items[key]
	if e == nil || e.expired(now) {
		return nil
	}
	return e
}

// makeRoom frees space for need more bytes: first up to two expired entries
// from the cold end (nginx's ngx_http_lua_shdict_expire(ctx, 1)), then, if
// evict is set, up to 30 least recently used entries whatever their state.
// It reports whether the space is there and whether a live entry was
// evicted.
func (d *SharedDict) makeRoom(need int64, now int64, evict bool) (ok, forcible bool) {
	for i := 0; i < 2; i++ {
		e := d.lru.prev
		if e == &d.lru || !e.expired(now) {
			break
		}
		d.remove(e)
	}
	if d.used+need <= d.capacity {
		return true, false
	}
	if !evict {
		return false, false
	}
	for i := 0; i < 30 && d.used+need > d.capacity; i++ {
		e := d.lru.prev
		if e == &d.lru {
			break
		}
		if !e.expired(now) {
			forcible = true
		}
		d.remove(e)
	}
	return d.used+need <= d.capacity, forcible
}

// StoreOp selects the semantics of Store.
type StoreOp uint8

// Store operations, as the Lua methods of the same names.
const (
	OpSet StoreOp = iota
	OpSafeSet
	OpAdd
	OpSafeAdd
	OpReplace
)

// Error strings returned to Lua, verbatim from lua-resty-core.
const (
	shErrExists   = "exists"
	shErrNotFound = "not found"
	shErrNoMemory = "no memory"
	shErrNotList  = "value not a list"
	shErrIsList   = "value is a list"
	shErrNotNum   = "not a number"
)

// Value is a dict value seen from Go: Kind is one of the sh* kinds.
type shValue struct {
	kind uint8
	str  string
	num  float64
}

func shExpiresAt(now int64, exptime float64) int64 {
	if exptime <= 0 {
		return 0
	}
	return now + int64(exptime*1000)
}

// store implements set/safe_set/add/safe_add/replace and delete (value nil
// → isNil). It returns ok, the error string and forcible.
func (d *SharedDict) store(op StoreOp, key string, v shValue, isNil bool, exptime float64, flags uint32) (bool, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	old := d.items[key]
	live := old != nil && !old.expired(now)
	switch op {
	case OpAdd, OpSafeAdd:
		if live {
			return false, shErrExists, false
		}
	case OpReplace:
		if !live {
			return false, shErrNotFound, false
		}
	}
	if isNil {
		if old != nil {
			d.remove(old)
		}
		return true, "", false
	}
	if old != nil {
		d.remove(old)
	}
	cost := shSlabSize(shNodeOverhead + int64(len(key)) + int64(len(v.str)))
	ok, forcible := d.makeRoom(cost, now, op == OpSet || op == OpAdd || op == OpReplace)
	if !ok {
		return false, shErrNoMemory, forcible
	}
	e := &shEntry{key: key, kind: v.kind, str: v.str, num: v.num, flags: flags, expires: shExpiresAt(now, exptime), cost: cost}
	d.items[key] = e
	d.used += cost
	d.pushFront(e)
	return true, "", forcible
}

// get returns the entry's value; found is false for missing keys, stale
// reports an expired entry (returned only when allowStale).
func (d *SharedDict) get(key string, allowStale bool) (v shValue, flags uint32, found, stale bool, err string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	e := d.items[key]
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
	if !stale {
		d.touch(e)
	}
	return shValue{kind: e.kind, str: e.str, num: e.num}, e.flags, true, stale, ""
}

// incr adds delta to a number value; with hasInit a missing or expired key
// starts at init (with initTTL). It returns the new value, error, forcible.
func (d *SharedDict) incr(key string, delta float64, init float64, hasInit bool, initTTL float64) (float64, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	e := d.items[key]
	if e != nil && !e.expired(now) {
		if e.kind != shNumber {
			return 0, shErrNotNum, false
		}
		e.num += delta
		d.touch(e)
		return e.num, "", false
	}
	if !hasInit {
		return 0, shErrNotFound, false
	}
	if e != nil {
		d.remove(e)
	}
	cost := shSlabSize(shNodeOverhead + int64(len(key)) + 8)
	ok, forcible := d.makeRoom(cost, now, true)
	if !ok {
		return 0, shErrNoMemory, forcible
	}
	e = &shEntry{key: key, kind: shNumber, num: init + delta, expires: shExpiresAt(now, initTTL), cost: cost}
	d.items[key] = e
	d.used += cost
	d.pushFront(e)
	return e.num, "", forcible
}

func shItemCost(it shItem) int64 {
	if it.isNum {
		return shSlabSize(shListOverhead + 8)
	}
	return shSlabSize(shListOverhead + int64(len(it.str)))
}

// push adds it at the front (left) or back of the list at key and returns
// the new length.
func (d *SharedDict) push(key string, it shItem, left bool) (int, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	e := d.items[key]
	if e != nil && e.expired(now) {
		d.remove(e)
		e = nil
	}
	if e != nil && e.kind != shList {
		return 0, shErrNotList
	}
	need := shItemCost(it)
	if e == nil {
		need += shSlabSize(shNodeOverhead + int64(len(key)))
	}
	if ok, _ := d.makeRoom(need, now, true); !ok {
		return 0, shErrNoMemory
	}
	// makeRoom may have evicted the list itself.
	if e != nil && d.items[key] != e {
		e = nil
		need += shSlabSize(shNodeOverhead + int64(len(key)))
		if ok, _ := d.makeRoom(need, now, true); !ok {
			return 0, shErrNoMemory
		}
	}
	if e == nil {
		e = &shEntry{key: key, kind: shList}
		d.items[key] = e
		d.pushFront(e)
	} else {
		d.touch(e)
	}
	if left {
		e.list = append(e.list, shItem{})
		copy(e.list[1:], e.list)
		e.list[0] = it
	} else {
		e.list = append(e.list, it)
	}
	e.cost += need
	d.used += need
	return len(e.list), ""
}

func (d *SharedDict) pop(key string, left bool) (shItem, bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.lookup(key, d.now())
	if e == nil {
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
	c := shItemCost(it)
	e.cost -= c
	d.used -= c
	if len(e.list) == 0 {
		d.remove(e)
	} else {
		d.touch(e)
	}
	return it, true, ""
}

func (d *SharedDict) llen(key string) (int, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.lookup(key, d.now())
	if e == nil {
		return 0, ""
	}
	if e.kind != shList {
		return 0, shErrNotList
	}
	return len(e.list), ""
}

// ttl returns the remaining lifetime in seconds (0: never expires).
func (d *SharedDict) ttl(key string) (float64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	e := d.lookup(key, now)
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
	e := d.lookup(key, now)
	if e == nil {
		return false
	}
	e.expires = shExpiresAt(now, exptime)
	return true
}

// FlushAll marks every entry expired, as nginx does: memory is reclaimed
// lazily and get_stale still sees the old values.
func (d *SharedDict) FlushAll() {
	d.mu.Lock()
	for e := d.lru.next; e != &d.lru; e = e.next {
		e.expires = 1
	}
	d.mu.Unlock()
}

// FlushExpired removes up to max expired entries (all when max <= 0) and
// returns how many it removed.
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

// Keys returns up to max live keys (all when max <= 0), most recently used
// first.
func (d *SharedDict) Keys(max int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var keys []string
	for e := d.lru.next; e != &d.lru; e = e.next {
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
		ud := L.NewUserData()
		ud.Value = d
		ud.Metatable = mt
		t.RawSetString(string(name), ud)
		L.Push(ud)
		return 1
	}))
	shared.Metatable = smt
	ngx.RawSetString("shared", shared)
}

var shdictMethods = map[string]lua.LGFunction{
	"get":           func(L *lua.LState) int { return shdictGet(L, false) },
	"get_stale":     func(L *lua.LState) int { return shdictGet(L, true) },
	"set":           func(L *lua.LState) int { return shdictStore(L, OpSet) },
	"safe_set":      func(L *lua.LState) int { return shdictStore(L, OpSafeSet) },
	"add":           func(L *lua.LState) int { return shdictStore(L, OpAdd) },
	"safe_add":      func(L *lua.LState) int { return shdictStore(L, OpSafeAdd) },
	"replace":       func(L *lua.LState) int { return shdictStore(L, OpReplace) },
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
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if d, ok := ud.Value.(*SharedDict); ok {
			return d
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
		L.Push(lua.LNil)
		L.Push(lua.LString(err))
		return 2
	}
	if !found {
		L.Push(lua.LNil)
		return 1
	}
	pushShValue(L, v)
	if flags != 0 {
		L.Push(lua.LNumber(flags))
	} else {
		L.Push(lua.LNil)
	}
	if stale {
		L.Push(lua.LBool(isStale))
		return 3
	}
	if flags == 0 {
		return 1
	}
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

func shdictStore(L *lua.LState, op StoreOp) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	exptime := shOptNumber(L, 4, "exptime")
	if exptime < 0 {
		L.RaiseError(`bad "exptime" argument`)
	}
	flags := shOptNumber(L, 5, "flags")
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
		L.Push(lua.LNil)
		L.Push(lua.LString("bad value type"))
		return 2
	}
	ok, err, forcible := d.store(op, key, v, isNil, exptime, uint32(flags))
	return pushStoreResult(L, ok, err, forcible)
}

func shdictDelete(L *lua.LState) int {
	d := shCheckDict(L)
	key, ok := shCheckKey(L)
	if !ok {
		return 2
	}
	ok, err, forcible := d.store(OpSet, key, shValue{}, true, 0, 0)
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
		L.Push(lua.LNil)
		L.Push(lua.LString(err))
		return 2
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
		L.Push(lua.LNil)
		L.Push(lua.LString("bad value type"))
		return 2
	}
	n, err := d.push(key, it, left)
	if err != "" {
		L.Push(lua.LNil)
		L.Push(lua.LString(err))
		return 2
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
		L.Push(lua.LNil)
		L.Push(lua.LString(err))
		return 2
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
		L.Push(lua.LNil)
		L.Push(lua.LString(err))
		return 2
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
		L.Push(lua.LNil)
		L.Push(lua.LString(shErrNotFound))
		return 2
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
		L.Push(lua.LNil)
		L.Push(lua.LString(shErrNotFound))
		return 2
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
