package luabind

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// gopher-lua words the errors its VM raises its own way ("attempt to index
// a non-table object(nil) with key 'y'", "cannot perform add operation
// between nil and number", "attempt to call a non-function object"…), where
// LuaJIT says "attempt to index field 'x' (a nil value)" and names the
// operand after where its value came from. The VM cannot be hooked, but
// the state's panic function can: pcall, xpcall and coroutines run their
// function with luajitPanic, which rewrites the message as it is raised,
// and the run's error handler rewrites what reaches it; both while the
// failing frame is still on the stack. The instruction at its pc tells
// which register was the operand, and the code before it where that
// register was loaded from, as LuaJIT's lj_debug_slotname does.

// luajitMessage rewrites msg, the error being raised while the frame at
// level was current, into LuaJIT's wording. Messages that are not one of
// gopher-lua's VM errors are returned as they are.
func luajitMessage(L *lua.LState, level int, msg string) (out string) {
	// A rewrite that went wrong must not turn the error into a Go panic:
	// the message then stays gopher-lua's.
	defer func() {
		if recover() != nil {
			out = msg
		}
	}()
	if !strings.HasPrefix(msg, "@") && !strings.Contains(msg, "attempt to ") &&
		!strings.Contains(msg, "cannot perform ") && !strings.Contains(msg, " undefined") &&
		!strings.Contains(msg, "for statement ") && !strings.Contains(msg, "too many recursions in ") &&
		!strings.Contains(msg, "bad argument #") && !strings.Contains(msg, "table index is ") {
		return msg
	}
	var fr *errFrame
	inGo := false
	dbg, ok := L.GetStack(level)
	if ok {
		if f, err := L.GetInfo("f", dbg, lua.LNil); err == nil && f == errorFunction() {
			// error()'s message is the caller's own, whatever it says.
			return msg
		}
		fr = newErrFrame(L, dbg)
		inGo = fr == nil
	}
	if strings.HasPrefix(msg, "@") {
		// gopher-lua positions by the chunk name as given; Lua shows a
		// file's "@path" as the path.
		if prefix, _ := splitPosition(msg); prefix != "" {
			msg = msg[1:]
		}
	}
	body := msg
	prefix := ""
	if fr != nil && strings.HasPrefix(msg, fr.where) {
		prefix, body = fr.where, msg[len(fr.where):]
	} else {
		// Not raised by the instruction the frame is at: by Go code on
		// behalf of a Lua caller (gopher-lua's position is then the
		// nearest Lua frame's), or re-raised. The wording can still be
		// LuaJIT's where the message carries the types, but nothing can
		// be named.
		fr = nil
		prefix, body = splitPosition(msg)
		if inGo {
			if out, ok := luajitArgError(L, level, dbg, prefix, body); ok {
				return out
			}
			// LuaJIT positions an error on an operation by the frame
			// it happened in: none for a C function's.
			prefix = ""
		}
	}
	if out, ok := rewriteVMError(fr, body); ok {
		return prefix + out
	}
	return msg
}

// splitPosition splits gopher-lua's "chunk:line: " off msg.
func splitPosition(msg string) (prefix, body string) {
	for i := 0; ; {
		j := strings.Index(msg[i:], ": ")
		if j < 0 {
			return "", msg
		}
		i += j
		k := strings.LastIndexByte(msg[:i], ':')
		if k >= 0 && k+1 < i && strings.Trim(msg[k+1:i], "0123456789") == "" {
			return msg[:i+2], msg[i+2:]
		}
		i += 2
	}
}

// luajitArgError rewrites gopher-lua's argument error, raised by the Go
// function of frame dbg ("bad argument #2 to rep (number expected, got
// nil)"), as LuaJIT words it: the function name quoted ("?" when the call
// site gives none), arguments counted without self in a method call
// ("calling 'rep' on bad self" for self itself), a missing argument "no
// value", and neither name nor position when the function was not called
// from Lua code or was tail-called.
func luajitArgError(L *lua.LState, level int, dbg *lua.Debug, prefix, body string) (string, bool) {
	rest, ok := strings.CutPrefix(body, "bad argument #")
	if !ok {
		return "", false
	}
	num, rest, ok := strings.Cut(rest, " to ")
	if !ok {
		return "", false
	}
	name, msg, ok := strings.Cut(rest, " (")
	narg, err := strconv.Atoi(num)
	if !ok || err != nil || strings.HasPrefix(name, "'") || !strings.HasSuffix(msg, ")") {
		return "", false
	}
	msg = msg[:len(msg)-1]
	if name == "(anonymous)" {
		name = "?"
	}
	if got, ok := strings.CutSuffix(msg, "got nil"); ok && narg > frameField(dbg, "NArgs") {
		msg = got + "got no value"
	}
	var cf *errFrame
	if caller, ok := L.GetStack(level + 1); ok {
		cf = newErrFrame(L, caller)
	}
	if cf == nil || instOp(cf.proto.Code[cf.pc]) == lua.OP_TAILCALL || prefix == "" {
		return "bad argument #" + num + " to '?' (" + msg + ")", true
	}
	if strings.HasPrefix(slotName(cf.proto, cf.pc, instA(cf.proto.Code[cf.pc])), "method ") {
		if narg--; narg == 0 {
			return prefix + "calling '" + name + "' on bad self (" + msg + ")", true
		}
	}
	return prefix + "bad argument #" + strconv.Itoa(narg) + " to '" + name + "' (" + msg + ")", true
}

// rewriteVMError rewrites one of gopher-lua's VM error messages (without
// position); fr, when not nil, is the Lua frame that raised it.
func rewriteVMError(fr *errFrame, body string) (string, bool) {
	switch {
	case strings.HasPrefix(body, "attempt to index a non-table object("):
		t, _, ok := strings.Cut(body[len("attempt to index a non-table object("):], ") with key '")
		if !ok || !strings.HasSuffix(body, "'") {
			return "", false
		}
		return fr.operandError("index", t)
	case strings.HasPrefix(body, "cannot perform ") && strings.Contains(body, " operation between "):
		op, rest, _ := strings.Cut(body[len("cannot perform "):], " operation between ")
		t1, t2, ok := strings.Cut(rest, " and ")
		if !ok {
			return "", false
		}
		if op == "concat" {
			t := t1
			if t1 == "string" || t1 == "number" {
				t = t2
			}
			return "attempt to concatenate a " + t + " value", true
		}
		return fr.arithError(t1, t2), true
	case body == "__unm undefined":
		return fr.operandError("perform arithmetic on", "")
	case body == "__len undefined":
		return fr.operandError("get length of", "")
	case body == "attempt to call a non-function object":
		return fr.operandError("call", "")
	case strings.HasPrefix(body, "attempt to compare "):
		t1, t2, ok := strings.Cut(body[len("attempt to compare "):], " with ")
		if !ok || strings.HasPrefix(t1, "two ") {
			return "", false
		}
		if t1 == t2 {
			return "attempt to compare two " + t1 + " values", true
		}
		return body, true
	case body == "for statement init must be a number":
		return "'for' initial value must be a number", true
	case body == "for statement limit must be a number":
		return "'for' limit must be a number", true
	case body == "for statement step must be a number":
		return "'for' step must be a number", true
	case body == "table index is nil" || body == "table index is NaN":
		// Worded alike; only the position (none from rawset) differs.
		return body, true
	case body == "too many recursions in gettable":
		return "loop in gettable", true
	case body == "too many recursions in settable":
		return "loop in settable", true
	}
	return "", false
}

// errFrame is the Lua frame an error was raised in, at its failing
// instruction.
type errFrame struct {
	L     *lua.LState
	dbg   *lua.Debug
	proto *lua.FunctionProto
	pc    int // index of the failing instruction in proto.Code
	where string
}

func newErrFrame(L *lua.LState, dbg *lua.Debug) *errFrame {
	f, err := L.GetInfo("Slf", dbg, lua.LNil)
	if err != nil || dbg.What == "G" {
		return nil
	}
	fn, ok := f.(*lua.LFunction)
	if !ok || fn.IsG || fn.Proto == nil {
		return nil
	}
	pc := framePC(dbg) - 1
	if pc < 0 || pc >= len(fn.Proto.Code) {
		return nil
	}
	return &errFrame{
		L: L, dbg: dbg, proto: fn.Proto, pc: pc,
		where: shortSource(dbg.Source) + ":" + strconv.Itoa(dbg.CurrentLine) + ": ",
	}
}

// framePC reads the frame's pc (one past the current instruction), which
// gopher-lua keeps in the unexported lua.Debug.frame. Reading unexported
// fields through reflect is allowed; -1 when the layout is not the
// expected one (another gopher-lua), and errors then go unnamed.
func framePC(dbg *lua.Debug) int {
	fr := reflect.ValueOf(dbg).Elem().FieldByName("frame")
	if fr.Kind() != reflect.Pointer || fr.IsNil() {
		return -1
	}
	pc := fr.Elem().FieldByName("Pc")
	if pc.Kind() != reflect.Int {
		return -1
	}
	return int(pc.Int())
}

// stackLevel is L.GetStack(level), except where gopher-lua's GetStack,
// counting a tail call as a level of its own, runs past the bottom of the
// stack and answers with the bottom frame again: there LuaJIT has no frame.
// (Coroutines reach this: their entry function tail-calls the body, see
// coroutineEntry.)
func stackLevel(L *lua.LState, level int) (*lua.Debug, bool) {
	dbg, ok := L.GetStack(level)
	if !ok || level == 0 {
		return dbg, ok
	}
	if below, ok := L.GetStack(level - 1); ok && debugFrame(dbg) != 0 && debugFrame(below) == debugFrame(dbg) {
		return nil, false
	}
	return dbg, true
}

// debugFrame identifies the call frame a lua.Debug describes.
func debugFrame(dbg *lua.Debug) uintptr {
	fr := reflect.ValueOf(dbg).Elem().FieldByName("frame")
	if fr.Kind() != reflect.Pointer {
		return 0
	}
	return fr.Pointer()
}

// Instruction fields of gopher-lua's (Lua 5.1's) encoding: opcode in the
// top 6 bits, then A (8), C (9), B (9); Bx is the low 18 bits. B and C name
// a constant when their high bit (256) is set.
func instOp(i uint32) int { return int(i >> 26) }
func instA(i uint32) int  { return int(i>>18) & 0xff }
func instB(i uint32) int  { return int(i & 0x1ff) }
func instC(i uint32) int  { return int(i>>9) & 0x1ff }
func instBx(i uint32) int { return int(i & 0x3ffff) }

const rkConstant = 0x100

// operandError words an error on the operand of the failing instruction:
// the index or call target, the operand of unary minus or #. t is the type
// the message gave, "" when it gave none: then the operand must be read to
// word the error at all. LuaJIT names the operand only when the failing
// value is the one in its register — not, say, the number an __index chain
// ended on.
func (fr *errFrame) operandError(op, t string) (string, bool) {
	unnamed := func() (string, bool) {
		if t == "" {
			return "", false
		}
		return "attempt to " + op + " a " + t + " value", true
	}
	if fr == nil {
		return unnamed()
	}
	inst := fr.proto.Code[fr.pc]
	var reg int
	switch instOp(inst) {
	case lua.OP_GETTABLE, lua.OP_GETTABLEKS, lua.OP_SELF, lua.OP_UNM, lua.OP_LEN:
		reg = instB(inst)
	case lua.OP_SETTABLE, lua.OP_SETTABLEKS, lua.OP_CALL, lua.OP_TAILCALL, lua.OP_TFORLOOP:
		reg = instA(inst)
	default:
		return unnamed()
	}
	var v lua.LValue
	if reg&rkConstant != 0 {
		v = fr.rk(reg)
	} else {
		v = fr.register(reg)
	}
	if v == nil || (t != "" && typeName(v) != t) {
		return unnamed()
	}
	name := ""
	// The generator of a generic for is called from a hidden slot
	// LuaJIT never names.
	if reg&rkConstant == 0 && instOp(inst) != lua.OP_TFORLOOP {
		name = slotName(fr.proto, fr.pc, reg)
	}
	return opError(op, name, v), true
}

// arithError is LuaJIT's (and Lua 5.1's) arithmetic error: it reports the
// first operand unless that one converts to a number.
func (fr *errFrame) arithError(t1, t2 string) string {
	const op = "perform arithmetic on"
	if fr == nil {
		if t1 == "number" {
			t1 = t2
		}
		return "attempt to " + op + " a " + t1 + " value"
	}
	inst := fr.proto.Code[fr.pc]
	switch instOp(inst) {
	case lua.OP_ADD, lua.OP_SUB, lua.OP_MUL, lua.OP_DIV, lua.OP_MOD, lua.OP_POW:
	default:
		if t1 == "number" {
			t1 = t2
		}
		return "attempt to " + op + " a " + t1 + " value"
	}
	rk, v := instB(inst), fr.rk(instB(inst))
	if v == nil || numeric(v) {
		rk, v = instC(inst), fr.rk(instC(inst))
	}
	if v == nil {
		return "attempt to " + op + " a " + t2 + " value"
	}
	name := ""
	if rk&rkConstant == 0 {
		name = slotName(fr.proto, fr.pc, rk)
	}
	return opError(op, name, v)
}

// numeric reports whether Lua arithmetic takes v as a number.
func numeric(v lua.LValue) bool {
	switch x := v.(type) {
	case lua.LNumber:
		return true
	case lua.LString:
		_, err := parseLuaNumber(string(x))
		return err == nil
	}
	return false
}

// register is the value of the frame's register r, nil when unreadable.
func (fr *errFrame) register(r int) lua.LValue {
	name, v := fr.L.GetLocal(fr.dbg, r+1)
	if name == "" {
		return nil
	}
	return v
}

// rk is an RK operand's value: a constant or a register.
func (fr *errFrame) rk(x int) lua.LValue {
	if x&rkConstant != 0 {
		if k := x &^ rkConstant; k < len(fr.proto.Constants) {
			return fr.proto.Constants[k]
		}
		return nil
	}
	return fr.register(x)
}

// slotName is LuaJIT's lj_debug_slotname for gopher-lua's bytecode: how the
// value in register reg at instruction pc got there, as "local 'x'",
// "global 'x'", "field 'x'", "upvalue 'x'", "method 'x'", or "" when it has
// no name (a call result, a constant, a computed key…). Like LuaJIT it scans
// back linearly, not following jumps.
func slotName(p *lua.FunctionProto, pc, reg int) string {
	pseudo := closurePseudoOps(p, pc)
	constName := func(k int) (string, bool) {
		if k < 0 || k >= len(p.Constants) {
			return "", false
		}
		s, ok := p.Constants[k].(lua.LString)
		return cString(string(s)), ok
	}
restart:
	if name := localName(p, reg, pc); name != "" {
		return "local '" + cString(name) + "'"
	}
	for pc--; pc >= 0; pc-- {
		if pseudo[pc] {
			continue
		}
		inst := p.Code[pc]
		a := instA(inst)
		switch instOp(inst) {
		case lua.OP_MOVE, lua.OP_MOVEN:
			if a == reg {
				reg = instB(inst)
				goto restart
			}
		case lua.OP_SELF:
			if a == reg {
				if s, ok := constName(instC(inst) &^ rkConstant); ok && instC(inst)&rkConstant != 0 {
					return "method '" + s + "'"
				}
				return ""
			}
			if a+1 == reg {
				reg = instB(inst)
				goto restart
			}
		case lua.OP_GETGLOBAL:
			if a == reg {
				if s, ok := constName(instBx(inst)); ok {
					return "global '" + s + "'"
				}
				return ""
			}
		case lua.OP_GETTABLE, lua.OP_GETTABLEKS:
			if a == reg {
				if c := instC(inst); c&rkConstant != 0 {
					if s, ok := constName(c &^ rkConstant); ok {
						return "field '" + s + "'"
					}
				}
				return ""
			}
		case lua.OP_GETUPVAL:
			if a == reg {
				if b := instB(inst); b < len(p.DbgUpvalues) {
					return "upvalue '" + cString(p.DbgUpvalues[b]) + "'"
				}
				return ""
			}
		case lua.OP_LOADNIL:
			if a <= reg && reg <= instB(inst) {
				return ""
			}
		case lua.OP_CALL, lua.OP_TAILCALL, lua.OP_VARARG, lua.OP_TFORLOOP:
			// These write from A upwards: like LuaJIT's base-relative
			// instructions, they end the search for any slot above.
			if reg >= a {
				return ""
			}
		case lua.OP_JMP, lua.OP_SETGLOBAL, lua.OP_SETUPVAL, lua.OP_SETTABLE, lua.OP_SETTABLEKS,
			lua.OP_EQ, lua.OP_LT, lua.OP_LE, lua.OP_TEST, lua.OP_RETURN, lua.OP_SETLIST,
			lua.OP_CLOSE, lua.OP_NOP:
			// write no register
		default:
			if a == reg {
				return ""
			}
		}
	}
	return ""
}

// localName is the name of the local in register reg at instruction pc
// (DbgLocals as CompileChunk leaves them), "" for a temporary.
func localName(p *lua.FunctionProto, reg, pc int) string {
	n := reg
	for _, l := range p.DbgLocals {
		if l.StartPc >= pc {
			break
		}
		if pc < l.EndPc {
			if n == 0 {
				if strings.HasPrefix(l.Name, "(") {
					return ""
				}
				return l.Name
			}
			n--
		}
	}
	return ""
}

// closurePseudoOps marks, up to pc, the instructions after each OP_CLOSURE
// that only describe its upvalues (Lua 5.1's pseudo MOVE/GETUPVAL): they are
// not executed and load nothing.
func closurePseudoOps(p *lua.FunctionProto, pc int) []bool {
	marks := make([]bool, pc+1)
	for i := 0; i < pc; i++ {
		inst := p.Code[i]
		if instOp(inst) != lua.OP_CLOSURE {
			continue
		}
		if k := instBx(inst); k < len(p.FunctionPrototypes) {
			for j := 1; j <= int(p.FunctionPrototypes[k].NumUpvalues) && i+j <= pc; j++ {
				marks[i+j] = true
			}
			i += int(p.FunctionPrototypes[k].NumUpvalues)
		}
	}
	return marks
}

// callable reports whether calling v can work: a function or a value whose
// metatable has a __call function (what gopher-lua's call accepts).
func callable(L *lua.LState, v lua.LValue) bool {
	if _, ok := v.(*lua.LFunction); ok {
		return true
	}
	_, ok := L.GetMetaField(v, "__call").(*lua.LFunction)
	return ok
}

// luajitPCall is pcall with LuaJIT's messages: f runs under protectedCall,
// which rewrites a message as it is raised. (A PCall message handler would
// also see the failing frame, but gopher-lua skips closing the upvalues of
// the frames it unwinds when there is one, and a registry overflow raised
// as it pushes the handler escapes PCall altogether.)
func luajitPCall(L *lua.LState) int {
	if L.GetTop() == 0 {
		apiArgError(L, 1, "value expected")
	}
	if f := L.Get(1); !callable(L, f) {
		L.Push(lua.LFalse)
		L.Push(lua.LString("attempt to call a " + typeName(f) + " value"))
		return 2
	}
	L.Insert(protectedCallFunction(), 1)
	return protectedResults(L, 0, protectedPCall(L, L.GetTop()-1, nil))
}

// protectedResults pushes pcall's results: true and what the call returned
// above base, or false and the error value.
func protectedResults(L *lua.LState, base int, err error) int {
	if err != nil {
		L.Push(lua.LFalse)
		if aerr, ok := err.(*lua.ApiError); ok {
			L.Push(aerr.Object)
		} else {
			L.Push(lua.LString(err.Error()))
		}
		return 2
	}
	L.Insert(lua.LTrue, base+1)
	return L.GetTop() - base
}

// luajitXPCall is LuaJIT 2.1's xpcall(f, handler, ...). The handler must be
// PCall's own error function, so that it runs right above the failing frame
// (handlers read the stack by level: debug.traceback(msg, 2)), which leaves
// no place to rewrite the message in between; instead f runs under
// protectedCall, which makes the message LuaJIT's as it is raised.
func luajitXPCall(L *lua.LState) int {
	if L.GetTop() < 2 {
		apiArgError(L, 2, "value expected")
	}
	h, ok := L.Get(2).(*lua.LFunction)
	if !ok {
		apiArgError(L, 2, "function expected, got "+argTypeName(L, 2))
	}
	L.Remove(2)
	if f := L.Get(1); !callable(L, f) {
		// LuaJIT raises this inside the protected call, so the
		// handler sees it.
		L.SetTop(0)
		L.Push(protectedCallFunction())
		L.Push(h)
		L.Push(lua.LString("attempt to call a " + typeName(f) + " value"))
		if err := protectedPCall(L, 2, nil); err != nil {
			L.SetTop(0)
			L.Push(lua.LString("error in error handling"))
		}
		L.SetTop(1) // the handler's first result, nil if none
		L.Insert(lua.LFalse, 1)
		return 2
	}
	L.Insert(protectedCallFunction(), 1)
	err := protectedPCall(L, L.GetTop()-1, h)
	if aerr, ok := err.(*lua.ApiError); ok && aerr.Type != lua.ApiErrorError {
		// PCall returns what the handler returned as an
		// ApiErrorError, and the handler's own error as it was
		// raised.
		err = &lua.ApiError{Type: lua.ApiErrorError, Object: lua.LString("error in error handling")}
	}
	return protectedResults(L, 0, err)
}

// errorFunction is the error global (luaError), one value for every VM so
// that luajitMessage can tell its frame.
var errorFunction = sync.OnceValue(func() *lua.LFunction { return sharedFunction(luaError) })

var protectedCallFunction = sync.OnceValue(func() *lua.LFunction { return sharedFunction(protectedCall) })

// protectedCall(f, ...) calls f with luajitPanic as the state's panic
// function, so that errors raised inside it get LuaJIT's wording while
// their frame is current. PCall sets its own panic function when it starts,
// so this is the function PCall runs; PCall restores the caller's when it
// returns.
func protectedCall(L *lua.LState) int {
	L.Panic = luajitPanic
	L.Call(L.GetTop()-1, lua.MultRet)
	return L.GetTop()
}

// luajitPanic is a panic function for lua.LState.Panic, which gopher-lua
// calls with the error pushed while the failing frame is current: it
// rewrites the message, then fails as gopher-lua's own does.
func luajitPanic(L *lua.LState) {
	closeUnwoundUpvalues(L)
	v := L.Get(-1)
	if s, ok := v.(lua.LString); ok {
		v = lua.LString(luajitMessage(L, 0, string(s)))
	}
	panic(&lua.ApiError{Type: lua.ApiErrorRun, Object: v})
}

// coroutineEntry is the body every coroutine starts with: it installs
// luajitPanic in the new thread (gopher-lua sets its own when the thread
// starts), then tail-calls the coroutine's function, so that no frame of its
// own stays below it.
const coroutineEntry = `local hook, f = ...
return function(...) hook() return f(...) end`

// coroutineEntryProto is coroutineEntry compiled, once for every VM:
// compiled per VM, it kept 34 KB alive in each (a VM is 148 KB without) and
// took a tenth of NewVM.
var coroutineEntryProto = sync.OnceValue(func() *lua.FunctionProto {
	proto, err := CompileChunk(strings.NewReader(coroutineEntry), "=coroutine")
	if err != nil {
		panic(err)
	}
	return proto
})

// coroutineEntryKey is the registry field holding the VM's coroutineEntry
// factory.
const coroutineEntryKey = "luaserve.coroutine_entry"

// luajitCoroutines wraps coroutine.create and coroutine.wrap so that errors
// inside coroutines are worded as LuaJIT's.
func luajitCoroutines(L *lua.LState) {
	L.G.Registry.RawSetString(coroutineEntryKey, L.NewFunctionFromProto(coroutineEntryProto()))
	co := L.GetGlobal("coroutine").(*lua.LTable)
	for _, name := range []string{"create", "wrap"} {
		orig := co.RawGetString(name)
		co.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			f, ok := L.Get(1).(*lua.LFunction)
			if !ok {
				apiArgError(L, 1, "function expected, got "+argTypeName(L, 1))
			}
			body := coroutineBody(L, f)
			ctx := createThreads(L, func() {
				L.Push(orig)
				L.Push(body)
				L.Call(1, 1)
			})
			if ctx != nil {
				switch v := L.Get(-1).(type) {
				case *lua.LState: // create
					v.SetContext(ctx)
				case *lua.LFunction: // wrap: the thread is its upvalue
					if len(v.Upvalues) > 0 {
						if co, ok := v.Upvalues[0].Value().(*lua.LState); ok {
							co.SetContext(ctx)
						}
					}
				}
			}
			return 1
		}))
	}
}

// newThread is L.NewThread through createThreads, with L's context.
func newThread(L *lua.LState) *lua.LState {
	var co *lua.LState
	if ctx := createThreads(L, func() { co, _ = L.NewThread() }); ctx != nil {
		co.SetContext(ctx)
	}
	return co
}

// createThreads runs create, which makes threads with L.NewThread, so that
// they start with a small data stack, and returns L's context for the
// caller to give them.
//
// gopher-lua derives a thread's context from L's with context.WithCancel,
// which for a context of our own type starts a goroutine that lives until
// the parent is cancelled or the thread finishes: a coroutine left
// suspended (an iterator abandoned halfway) kept one for as long as the
// VM's runs were not cancelled, one more per request. So L's context is
// taken away while the threads are made and they get L's own: the VM's
// runContext is one value across runs, so a thread resumed by a later
// request stops at that request's deadline.
//
// A thread is made with its parent's Options; the VM's data stack starts
// at 1,024 slots and grows 16,384 at a time, which would cost every coroutine
// 16 KB up front and a growing one 256 KB at once.
func createThreads(L *lua.LState, create func()) context.Context {
	ctx := L.RemoveContext()
	opts := L.Options
	L.Options.RegistrySize, L.Options.RegistryGrowStep = threadRegistrySize, threadRegistryGrowStep
	defer func() {
		L.Options = opts
		if ctx != nil {
			L.SetContext(ctx)
		}
	}()
	create()
	return ctx
}

// The data stack of a coroutine or light thread: 4 KB to start with, grown
// in 16 KB steps.
const (
	threadRegistrySize     = 256
	threadRegistryGrowStep = 1 << 10
)

// coroutineBody returns the function a coroutine running f must start
// with (coroutineEntry): what coroutine.create and coroutine.wrap hand
// gopher-lua, and what code starting a thread with L.Resume should too.
func coroutineBody(L *lua.LState, f *lua.LFunction) *lua.LFunction {
	L.Push(L.G.Registry.RawGetString(coroutineEntryKey))
	L.Push(installLuaJITPanicFunction())
	L.Push(f)
	L.Call(2, 1)
	body := L.Get(-1).(*lua.LFunction)
	L.Pop(1)
	return body
}

var installLuaJITPanicFunction = sync.OnceValue(func() *lua.LFunction {
	return sharedFunction(func(L *lua.LState) int {
		L.Panic = luajitPanic
		return 0
	})
})

// internalFrame reports whether the frame runs one of luabind's own helpers
// that stand where LuaJIT has no frame: the function of rewritten `..`
// chains, and protectedCall below xpcall's function. Tracebacks leave them
// out.
func internalFrame(L *lua.LState, dbg *lua.Debug) bool {
	f, err := L.GetInfo("f", dbg, lua.LNil)
	return err == nil && (f == concatFunction() || f == protectedCallFunction())
}

// luajitDebugTraceback is gopher-lua's debug.traceback without the lines of
// internal frames.
func luajitDebugTraceback(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		// Called in this frame, the original sees the stack as it
		// would have.
		n := orig.GFunction(L)
		if _, ok := L.Get(1).(*lua.LState); ok {
			return n
		}
		out, ok := L.Get(-1).(lua.LString)
		if !ok {
			return n
		}
		// The lines gopher-lua's stackTrace writes: one per frame from
		// level 0, one per tail call, a last "[G]: ?", the first
		// `level` dropped; past 20 it elides the middle, and then the
		// lines are left as they are.
		var internal []bool
		for i := 0; ; i++ {
			dbg, ok := L.GetStack(i)
			if !ok {
				break
			}
			internal = append(internal, internalFrame(L, dbg))
			if _, err := L.GetInfo("S", dbg, lua.LNil); err == nil && dbg.What != "G" {
				for tc := frameField(dbg, "TailCall"); tc > 0; tc-- {
					internal = append(internal, false)
					i++
				}
			}
		}
		internal = append(internal, false)
		internal = internal[min(max(L.OptInt(2, 1), 0), len(internal)):]
		if len(internal) > 20 || !slices.Contains(internal, true) {
			return n
		}
		lines := strings.Split(string(out), "\n")
		if len(lines) < len(internal) {
			return n
		}
		keep := lines[:len(lines)-len(internal)]
		for i, l := range lines[len(lines)-len(internal):] {
			if !internal[i] {
				keep = append(keep, l)
			}
		}
		L.Pop(1)
		L.Push(lua.LString(strings.Join(keep, "\n")))
		return n
	}
}

// frameField reads an int field of the call frame a lua.Debug describes
// (TailCall, NArgs), 0 when it cannot.
func frameField(dbg *lua.Debug, field string) int {
	fr := reflect.ValueOf(dbg).Elem().FieldByName("frame")
	if fr.Kind() != reflect.Pointer || fr.IsNil() {
		return 0
	}
	v := fr.Elem().FieldByName(field)
	if v.Kind() != reflect.Int {
		return 0
	}
	return int(v.Int())
}
