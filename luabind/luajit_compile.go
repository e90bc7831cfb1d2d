package luabind

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// CompileChunk parses and compiles Lua source as every luaserve chunk is
// compiled, so that it behaves as under LuaJIT where gopher-lua's compiler
// alone would not:
//
//   - a `..` chain whose operands are not all string literals calls a Go
//     function that concatenates with LuaJIT's number formatting ("%.14g"),
//     __concat order and error wording (gopher-lua's OP_CONCAT formats numbers
//     with Go and words its errors its own way, and cannot be hooked);
//   - the protos' local-variable ranges (DbgLocals) are recomputed, because
//     gopher-lua's compiler closes a block's locals on the wrong entries, and
//     runtime errors name locals from them (see luajit_errors.go).
//
// Parse errors are returned as parse.Parse returns them (*parse.Error), so
// callers keep formatting them.
func CompileChunk(src io.Reader, name string) (*lua.FunctionProto, error) {
	proto, _, err := compileChunk(src, name)
	return proto, err
}

// compileChunk is CompileChunk; scoped reports whether every function's
// locals matched what the compiler registered (else some go unnamed).
func compileChunk(src io.Reader, name string) (proto *lua.FunctionProto, scoped bool, err error) {
	chunk, err := parse.Parse(src, name)
	if err != nil {
		return nil, false, err
	}
	main := &fnScope{blockEnd: math.MaxInt}
	rw := &rewriter{fn: main}
	rw.stmts(chunk)
	proto, err = lua.Compile(chunk, name)
	if err != nil {
		return nil, false, err
	}
	return proto, main.patch(proto), nil
}

// concatMarker is the string constant the rewritten chains call; after
// compiling, patch swaps it for concatFunction in the protos' constant
// tables, so a chain costs one LOADK to reach its Go function and user code
// has no name to reach it by. The random part keeps a literal in user code
// from ever being taken for it.
var concatMarker = func() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "\x00luaserve:concat:" + hex.EncodeToString(b[:])
}()

// concatFunction is the Go function behind rewritten `..` chains. It lives in
// shared protos, so it is one value for every VM; it keeps no state.
var concatFunction = sync.OnceValue(func() *lua.LFunction { return sharedFunction(luajitConcat) })

// sharedFunction makes a Go function value that is not tied to a VM: one
// that only works on the state calling it.
func sharedFunction(fn lua.LGFunction) *lua.LFunction {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	return L.NewFunction(fn)
}

// fnScope mirrors, for one function being rewritten, what gopher-lua's
// compiler knows of its locals: which names are visible (to tell local,
// upvalue and global apart) and, in the compiler's order, every local it
// registers, with the register it gets and the last source line of its
// scope.
type fnScope struct {
	parent   *fnScope
	vars     []string // active locals; a local's register is its index
	decls    []localDecl
	children []*fnScope
	nparams  int // the compiler's NumParameters: self and named ones
	line     int
	lastLine int
	blockEnd int
}

type localDecl struct {
	name    string
	reg     int
	endLine int
}

func (f *fnScope) declare(name string) {
	f.decls = append(f.decls, localDecl{name: name, reg: len(f.vars), endLine: f.blockEnd})
	f.vars = append(f.vars, name)
}

type blockState struct{ nvars, blockEnd int }

func (f *fnScope) enter(endLine int) blockState {
	s := blockState{len(f.vars), f.blockEnd}
	f.blockEnd = endLine
	return s
}

func (f *fnScope) leave(s blockState) {
	f.vars = f.vars[:s.nvars]
	f.blockEnd = s.blockEnd
}

// register is the register of local name in f, -1 when it is not one of
// f's locals.
func (f *fnScope) register(name string) int {
	for i := len(f.vars) - 1; i >= 0; i-- {
		if f.vars[i] == name {
			return i
		}
	}
	return -1
}

// resolve tells how the compiler reaches name from f: "local", "upvalue" or
// "global".
func (f *fnScope) resolve(name string) string {
	for s := f; s != nil; s = s.parent {
		for i := len(s.vars) - 1; i >= 0; i-- {
			if s.vars[i] == name {
				if s == f {
					return "local"
				}
				return "upvalue"
			}
		}
	}
	return "global"
}

type rewriter struct{ fn *fnScope }

func (r *rewriter) stmts(list []ast.Stmt) {
	for i, s := range list {
		if a, ok := s.(*ast.AssignStmt); ok && r.clobbers(a) {
			list[i] = viaTemporaries(a)
		}
		r.stmt(list[i])
	}
}

// clobbers reports whether gopher-lua's compiler gets the assignment wrong:
// it evaluates each right-hand expression straight into the local it is
// assigned to, before the expressions after it, so `a, b = b, a` sets both
// to b (and a later call or metamethod may read the local through a
// closure); and it evaluates a call assigned to the last parameter with the
// callee in that parameter's register, before the arguments read it, when
// the call is not the last expression or is parenthesised (p = (f(p))).
// Rewritten `..` chains are calls too.
func (r *rewriter) clobbers(a *ast.AssignStmt) bool {
	for i, l := range a.Lhs {
		id, ok := l.(*ast.IdentExpr)
		if !ok || i >= len(a.Rhs) {
			continue
		}
		reg := r.fn.register(id.Value)
		if reg < 0 {
			continue
		}
		for _, later := range a.Rhs[i+1:] {
			if !readsNothingOf(later, id.Value) {
				return true
			}
		}
		if reg == r.fn.nparams-1 && mentionsCall(a.Rhs[i], i == len(a.Rhs)-1) {
			return true
		}
	}
	return false
}

// mentionsCall reports whether e is, or will be rewritten as, a call that
// the compiler evaluates into the assigned register: any call unless it is
// the last expression and not parenthesised (that one goes through a
// register of its own).
func mentionsCall(e ast.Expr, last bool) bool {
	switch x := e.(type) {
	case *ast.FuncCallExpr:
		return x.AdjustRet || !last
	case *ast.StringConcatOpExpr:
		return !last
	}
	return false
}

// readsNothingOf reports whether evaluating e cannot read the local name:
// a constant, another variable, a vararg or a closure (made, not called).
// Anything that may call a function or a metamethod could read it through
// an upvalue.
func readsNothingOf(e ast.Expr, name string) bool {
	switch x := e.(type) {
	case *ast.NilExpr, *ast.TrueExpr, *ast.FalseExpr, *ast.NumberExpr, *ast.StringExpr,
		*ast.Comma3Expr, *ast.FunctionExpr:
		return true
	case *ast.IdentExpr:
		return x.Value != name
	}
	return false
}

// viaTemporaries rewrites `l1, l2 = e1, e2` as
// `do local (tmp1), (tmp2) = e1, e2; l1, l2 = (tmp1), (tmp2) end`: the
// expressions are all evaluated, into registers of their own, before any
// is assigned, as Lua specifies. The names cannot clash with a
// variable's.
func viaTemporaries(a *ast.AssignStmt) ast.Stmt {
	line := a.Line()
	names := make([]string, len(a.Lhs))
	tmps := make([]ast.Expr, len(a.Lhs))
	for i := range names {
		names[i] = "(assignment " + strconv.Itoa(i+1) + ")"
		id := &ast.IdentExpr{Value: names[i]}
		id.SetLine(line)
		tmps[i] = id
	}
	last := line
	for _, e := range a.Rhs {
		last = max(last, maxLine(e))
	}
	local := &ast.LocalAssignStmt{Names: names, Exprs: a.Rhs}
	local.SetLine(line)
	assign := &ast.AssignStmt{Lhs: a.Lhs, Rhs: tmps}
	assign.SetLine(line)
	do := &ast.DoBlockStmt{Stmts: []ast.Stmt{local, assign}}
	do.SetLine(line)
	do.SetLastLine(last)
	return do
}

func (r *rewriter) block(list []ast.Stmt, endLine int) {
	s := r.fn.enter(endLine)
	r.stmts(list)
	r.fn.leave(s)
}

func (r *rewriter) exprs(list []ast.Expr) {
	for i, e := range list {
		list[i] = r.expr(e)
	}
}

// stmt walks a statement in the order gopher-lua's compiler registers the
// locals it declares (see compile.go's compile*Stmt).
func (r *rewriter) stmt(st ast.Stmt) {
	switch s := st.(type) {
	case *ast.AssignStmt:
		r.exprs(s.Lhs)
		r.exprs(s.Rhs)
		// LuaJIT stores into fields once the right side is parsed.
		end := maxLine(s.Rhs[len(s.Rhs)-1])
		for _, l := range s.Lhs {
			if a, ok := l.(*ast.AttrGetExpr); ok {
				a.SetLine(max(a.Line(), end))
			}
		}
	case *ast.LocalAssignStmt:
		if len(s.Names) == 1 && len(s.Exprs) == 1 {
			// The compiler registers the name of `local f = function`
			// (not only of `local function f`) before the body.
			if _, ok := s.Exprs[0].(*ast.FunctionExpr); ok {
				r.fn.declare(s.Names[0])
				r.exprs(s.Exprs)
				return
			}
		}
		r.exprs(s.Exprs)
		for _, n := range s.Names {
			r.fn.declare(n)
		}
	case *ast.FuncCallStmt:
		s.Expr = r.expr(s.Expr)
	case *ast.DoBlockStmt:
		r.block(s.Stmts, s.LastLine())
	case *ast.WhileStmt:
		s.Condition = r.expr(s.Condition)
		r.block(s.Stmts, s.LastLine())
	case *ast.RepeatStmt:
		// until's condition sees the body's locals.
		b := r.fn.enter(s.LastLine())
		r.stmts(s.Stmts)
		s.Condition = r.expr(s.Condition)
		r.fn.leave(b)
	case *ast.IfStmt:
		r.ifStmt(s, s.LastLine())
	case *ast.NumberForStmt:
		b := r.fn.enter(s.LastLine())
		r.fn.declare("(for index)")
		s.Init = r.expr(s.Init)
		r.fn.declare("(for limit)")
		s.Limit = r.expr(s.Limit)
		r.fn.declare("(for step)")
		if s.Step != nil {
			s.Step = r.expr(s.Step)
		}
		r.fn.declare(s.Name)
		r.stmts(s.Stmts)
		r.fn.leave(b)
	case *ast.GenericForStmt:
		b := r.fn.enter(s.LastLine())
		r.fn.declare("(for generator)")
		r.fn.declare("(for state)")
		r.fn.declare("(for control)")
		r.exprs(s.Exprs)
		for _, n := range s.Names {
			r.fn.declare(n)
		}
		r.stmts(s.Stmts)
		r.fn.leave(b)
	case *ast.FuncDefStmt:
		if s.Name.Func == nil {
			s.Name.Receiver = r.expr(s.Name.Receiver)
			r.function(s.Func, true)
		} else {
			s.Name.Func = r.expr(s.Name.Func)
			r.function(s.Func, false)
		}
	case *ast.ReturnStmt:
		r.exprs(s.Exprs)
	}
}

// ifStmt walks an if statement whose `end` is on line end. A branch's scope
// ends before the line of the next elseif/else (the else token itself has
// no line in the AST: the first statement after it stands in).
func (r *rewriter) ifStmt(s *ast.IfStmt, end int) {
	s.Condition = r.expr(s.Condition)
	thenEnd := end
	if len(s.Else) > 0 {
		thenEnd = s.Else[0].Line() - 1
	}
	r.block(s.Then, thenEnd)
	if len(s.Else) == 1 {
		// An elseif is an IfStmt without a last line of its own.
		if e, ok := s.Else[0].(*ast.IfStmt); ok && e.LastLine() == 0 {
			b := r.fn.enter(end)
			r.ifStmt(e, end)
			r.fn.leave(b)
			return
		}
	}
	r.block(s.Else, end)
}

func (r *rewriter) function(f *ast.FunctionExpr, method bool) {
	child := &fnScope{parent: r.fn, line: f.Line(), lastLine: f.LastLine(), blockEnd: f.LastLine()}
	r.fn.children = append(r.fn.children, child)
	r.fn = child
	if method {
		child.declare("self")
	}
	for _, n := range f.ParList.Names {
		child.declare(n)
	}
	child.nparams = len(child.vars)
	if f.ParList.HasVargs && lua.CompatVarArg {
		child.declare("arg")
	}
	r.stmts(f.Stmts)
	r.fn = child.parent
}

// expr rewrites an expression. It also moves the line of the operations
// that can fail to where LuaJIT emits them, once their last operand is
// parsed (gopher-lua's parser gives them their first operand's line), so
// that an error in an expression spread over lines is positioned as
// LuaJIT positions it.
func (r *rewriter) expr(e ast.Expr) ast.Expr {
	switch x := e.(type) {
	case *ast.StringConcatOpExpr:
		return r.concat(x)
	case *ast.ArithmeticOpExpr:
		x.Lhs, x.Rhs = r.expr(x.Lhs), r.expr(x.Rhs)
		x.SetLine(max(x.Line(), maxLine(x.Rhs)))
	case *ast.RelationalOpExpr:
		x.Lhs, x.Rhs = r.expr(x.Lhs), r.expr(x.Rhs)
		x.SetLine(max(x.Line(), maxLine(x.Rhs)))
	case *ast.LogicalOpExpr:
		x.Lhs, x.Rhs = r.expr(x.Lhs), r.expr(x.Rhs)
	case *ast.UnaryMinusOpExpr:
		x.Expr = r.expr(x.Expr)
		x.SetLine(max(x.Line(), maxLine(x.Expr)))
	case *ast.UnaryNotOpExpr:
		x.Expr = r.expr(x.Expr)
	case *ast.UnaryLenOpExpr:
		x.Expr = r.expr(x.Expr)
		x.SetLine(max(x.Line(), maxLine(x.Expr)))
	case *ast.AttrGetExpr:
		x.Object, x.Key = r.expr(x.Object), r.expr(x.Key)
		x.SetLine(max(x.Line(), maxLine(x.Key)))
	case *ast.TableExpr:
		for _, f := range x.Fields {
			if f.Key != nil {
				f.Key = r.expr(f.Key)
			}
			f.Value = r.expr(f.Value)
		}
	case *ast.FuncCallExpr:
		if x.Func != nil {
			x.Func = r.expr(x.Func)
		}
		if x.Receiver != nil {
			x.Receiver = r.expr(x.Receiver)
		}
		r.exprs(x.Args)
	case *ast.FunctionExpr:
		r.function(x, false)
	}
	return e
}

// concat rewrites the chain a .. b .. c (right-nested in the AST, one
// OP_CONCAT for the compiler, one BC_CAT for LuaJIT) as
// <concatFunction>(a, b, c, descriptor). The function returns exactly one
// value, so the call needs no parentheses; it may be a tail call, which
// drops the caller's frame only once the function has returned. (A
// parenthesised call would be compiled straight into an assigned local,
// which gopher-lua gets wrong for the last parameter: see clobbers.) A
// chain of string literals only cannot fail and formats no number: it stays
// an OP_CONCAT.
func (r *rewriter) concat(e *ast.StringConcatOpExpr) ast.Expr {
	var ops []ast.Expr
	for cur := ast.Expr(e); ; {
		c, ok := cur.(*ast.StringConcatOpExpr)
		if !ok {
			ops = append(ops, cur)
			break
		}
		ops = append(ops, c.Lhs)
		cur = c.Rhs
	}
	literal := true
	for i, op := range ops {
		ops[i] = r.expr(op)
		if _, ok := ops[i].(*ast.StringExpr); !ok {
			literal = false
		}
	}
	if literal {
		return e
	}
	// LuaJIT emits BC_CAT once the chain is parsed: its line is the last
	// operand's.
	line := maxLine(ops[len(ops)-1])
	fn := &ast.StringExpr{Value: concatMarker}
	fn.SetLine(line)
	desc := &ast.StringExpr{Value: r.describeOperands(ops)}
	desc.SetLine(line)
	call := &ast.FuncCallExpr{Func: fn, Args: append(ops, desc)}
	call.SetLine(line)
	return call
}

// describeOperands encodes how LuaJIT would name each operand in an error
// (the slot's origin: local, upvalue, global or a string-keyed field), one
// entry per operand, NUL-separated: a kind letter and the name, or nothing.
func (r *rewriter) describeOperands(ops []ast.Expr) string {
	var b strings.Builder
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(0)
		}
		switch x := op.(type) {
		case *ast.IdentExpr:
			b.WriteByte(r.fn.resolve(x.Value)[0])
			b.WriteString(cString(x.Value))
		case *ast.AttrGetExpr:
			if k, ok := x.Key.(*ast.StringExpr); ok {
				b.WriteByte('f')
				b.WriteString(cString(k.Value))
			}
		}
	}
	return b.String()
}

// cString is s as LuaJIT's error formatting (C strings) prints it.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// maxLine is the last line an expression's nodes are on.
func maxLine(e ast.Expr) int {
	m := max(e.Line(), e.LastLine())
	sub := func(x ast.Expr) {
		if x != nil {
			m = max(m, maxLine(x))
		}
	}
	switch x := e.(type) {
	case *ast.StringConcatOpExpr:
		sub(x.Lhs)
		sub(x.Rhs)
	case *ast.ArithmeticOpExpr:
		sub(x.Lhs)
		sub(x.Rhs)
	case *ast.RelationalOpExpr:
		sub(x.Lhs)
		sub(x.Rhs)
	case *ast.LogicalOpExpr:
		sub(x.Lhs)
		sub(x.Rhs)
	case *ast.UnaryMinusOpExpr:
		sub(x.Expr)
	case *ast.UnaryNotOpExpr:
		sub(x.Expr)
	case *ast.UnaryLenOpExpr:
		sub(x.Expr)
	case *ast.AttrGetExpr:
		sub(x.Object)
		sub(x.Key)
	case *ast.TableExpr:
		for _, f := range x.Fields {
			sub(f.Key)
			sub(f.Value)
		}
	case *ast.FuncCallExpr:
		sub(x.Func)
		sub(x.Receiver)
		for _, a := range x.Args {
			sub(a)
		}
	}
	return m
}

// patch finishes a proto compiled from f's rewritten AST: the concat marker
// becomes the Go function, and DbgLocals get the ranges the compiler meant.
func (f *fnScope) patch(p *lua.FunctionProto) bool {
	patchConcatConstant(p)
	ok := f.fixLocals(p)
	used := make([]bool, len(f.children))
	for _, cp := range p.FunctionPrototypes {
		var match *fnScope
		for i, c := range f.children {
			if !used[i] && c.line == cp.LineDefined && c.lastLine == cp.LastLineDefined {
				used[i], match = true, c
				break
			}
		}
		if match == nil {
			// Not expected; without a scope the ranges cannot be
			// trusted, so no local gets named there.
			patchUnknown(cp)
			ok = false
			continue
		}
		ok = match.patch(cp) && ok
	}
	return ok
}

func patchUnknown(p *lua.FunctionProto) {
	patchConcatConstant(p)
	clearLocals(p)
	for _, cp := range p.FunctionPrototypes {
		patchUnknown(cp)
	}
}

func patchConcatConstant(p *lua.FunctionProto) {
	for i, c := range p.Constants {
		if s, ok := c.(lua.LString); ok && string(s) == concatMarker {
			p.Constants[i] = concatFunction()
		}
	}
}

// fixLocals recomputes p.DbgLocals' ranges. gopher-lua's EndScope sets
// DbgLocals[register].EndPc rather than the entry of the local leaving
// scope, so after the first block with locals the ranges name the wrong
// variables. The start pcs are right; a local ends at the first pc past its
// scope's last line, or where a later local takes its register, whichever
// comes first. Ranges are stored for gopher-lua's LocalName test
// (StartPc < pc < EndPc), which debug.getlocal uses too.
func (f *fnScope) fixLocals(p *lua.FunctionProto) bool {
	if len(p.DbgLocals) != len(f.decls) {
		clearLocals(p)
		return false
	}
	for k, d := range f.decls {
		if p.DbgLocals[k].Name != d.name {
			clearLocals(p)
			return false
		}
	}
	starts := make([]int, len(f.decls))
	for k := range f.decls {
		starts[k] = p.DbgLocals[k].StartPc
	}
	for k, d := range f.decls {
		end := len(p.Code)
		for j := k + 1; j < len(f.decls); j++ {
			if f.decls[j].reg <= d.reg {
				end = min(end, starts[j])
				break
			}
		}
		for pc := starts[k]; pc < end && pc < len(p.DbgSourcePositions); pc++ {
			if p.DbgSourcePositions[pc] > d.endLine {
				end = pc
				break
			}
		}
		p.DbgLocals[k].StartPc = starts[k] - 1
		p.DbgLocals[k].EndPc = end
	}
	return true
}

// clearLocals leaves a proto whose scopes are unknown without local names
// rather than with wrong ones.
func clearLocals(p *lua.FunctionProto) {
	for _, l := range p.DbgLocals {
		l.StartPc, l.EndPc = -1, -1
	}
}
