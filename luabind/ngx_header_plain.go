package luabind

import (
	"reflect"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// nginx sends a response header Lua set under the name Lua wrote,
// content-encoding and set-cookie included. fasthttp keeps those two (and
// Trailer) in fields of their own and writes them under its canonical
// names, and its API has no way to add them as ordinary headers. So
// addPlainResponseHeader appends them to fasthttp's list of ordinary
// headers directly, which fasthttp writes name for name and which its Del,
// Peek and All see as any other header. The list's layout is checked
// against the one assumed here when the package loads; should a fasthttp
// upgrade change it, the canonical path is taken instead (and the compat
// test's header cases show it).

// plainKV mirrors fasthttp's argsKV, the element of ResponseHeader.h.
type plainKV struct {
	key     []byte
	value   []byte
	noValue bool
}

// plainListOffset is the offset of ResponseHeader's embedded header.h;
// plainListOK says its layout is the one plainKV mirrors.
var plainListOffset, plainListOK = func() (uintptr, bool) {
	t := reflect.TypeOf(fasthttp.ResponseHeader{})
	f, ok := t.FieldByName("h")
	if !ok || f.Type.Kind() != reflect.Slice {
		return 0, false
	}
	var off uintptr
	for i := range f.Index {
		sf := t.FieldByIndex(f.Index[:i+1])
		off += sf.Offset
	}
	el := f.Type.Elem()
	want := reflect.TypeOf(plainKV{})
	if el.Kind() != reflect.Struct || el.Size() != want.Size() || el.NumField() != want.NumField() {
		return 0, false
	}
	for i := 0; i < el.NumField(); i++ {
		a, b := el.Field(i), want.Field(i)
		if a.Name != b.Name || a.Offset != b.Offset || a.Type.Kind() != b.Type.Kind() ||
			a.Type.Kind() == reflect.Slice && a.Type.Elem().Kind() != reflect.Uint8 {
			return 0, false
		}
	}
	return off, true
}()

// sendsOwnName reports whether fasthttp would send a header named name
// under a canonical name of its own while nginx keeps the one Lua wrote.
// (Server and Date, which fasthttp also names itself, are left to it: it
// would add its own besides an ordinary one.)
func sendsOwnName(name string) bool {
	return plainListOK && (strings.EqualFold(name, "Content-Encoding") ||
		strings.EqualFold(name, "Set-Cookie") || strings.EqualFold(name, "Trailer"))
}

// addPlainResponseHeader adds name: value to h as an ordinary header,
// sent with name as given (the caller has checked sendsOwnName).
func addPlainResponseHeader(h *fasthttp.ResponseHeader, name, value string) {
	list := (*[]plainKV)(unsafe.Add(unsafe.Pointer(h), plainListOffset))
	if n := len(*list); n < cap(*list) {
		*list = (*list)[:n+1] // fasthttp's way: reuse the slot's buffers
	} else {
		*list = append(*list, plainKV{})
	}
	kv := &(*list)[len(*list)-1]
	kv.key = append(kv.key[:0], name...)
	kv.value = append(kv.value[:0], value...)
	kv.noValue = false
}
