package server

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"

	"luaserve/memcached"
)

// memcached's protocol_binary.h numbers the SASL statuses 0x20 and 0x21 (not
// the 0x08/0x09 of older drafts); these are the bytes it sends.
const (
	wireAuthError    memcached.Status = 0x20
	wireAuthContinue memcached.Status = 0x21
)

// maxBinaryHead: memcached reads header, extras and key into its fixed
// 16 KiB read buffer; when a request's head does not fit it sends what it
// owes and hangs up without a reply (measured: 16382 bytes is the most it
// takes).
const maxBinaryHead = readBufSize - 2

// maxSASLMech is memcached's MAX_SASL_MECH_LEN.
const maxSASLMech = 32

// Binary error bodies, spelled as memcached's write_bin_error spells them.
var binErrText = map[memcached.Status]string{
	memcached.StatusOutOfMemory:    "Out of memory",
	memcached.StatusUnknownCommand: "Unknown command",
	memcached.StatusKeyNotFound:    "Not found",
	memcached.StatusInvalidArgs:    "Invalid arguments",
	memcached.StatusKeyExists:      "Data exists for key.",
	memcached.StatusValueTooLarge:  "Too large.",
	memcached.StatusNonNumeric:     "Non-numeric server-side value for incr or decr",
	memcached.StatusItemNotStored:  "Not stored.",
	wireAuthError:                  "Auth failure.",
}

// reqHeader is a decoded binary request header.
type reqHeader struct {
	opcode  memcached.Opcode
	extlen  uint8
	keylen  uint16
	bodylen uint32
	opaque  uint32
	cas     uint64
}

// binaryStep handles one binary request; see textStep.
func (c *conn) binaryStep() (action, bool) {
	if c.pend.active {
		return c.binaryValue()
	}
	avail := c.buf[c.r:c.w]
	if len(avail) < memcached.HeaderLen {
		return actMore, false
	}
	if avail[0] != memcached.MagicRequest {
		return actClose, false
	}
	h := reqHeader{
		opcode:  memcached.Opcode(avail[1]),
		keylen:  binary.BigEndian.Uint16(avail[2:]),
		extlen:  avail[4],
		bodylen: binary.BigEndian.Uint32(avail[8:]),
		opaque:  binary.BigEndian.Uint32(avail[12:]),
		cas:     binary.BigEndian.Uint64(avail[16:]),
	}
	// memcached consumes header, extras and key together before looking at
	// the request, whatever bodylen says.
	n := memcached.HeaderLen + int(h.extlen) + int(h.keylen)
	if n > maxBinaryHead {
		return actQuit, false
	}
	if len(avail) < n {
		return actMore, false
	}
	ext := avail[memcached.HeaderLen : memcached.HeaderLen+int(h.extlen)]
	key := avail[memcached.HeaderLen+int(h.extlen) : n]
	c.r += n
	return c.binaryDispatch(&h, ext, key)
}

// binHeader appends a response header.
func (c *conn) binHeader(h *reqHeader, status memcached.Status, extlen, keylen int, bodylen int, cas uint64) {
	var b [memcached.HeaderLen]byte
	b[0] = memcached.MagicResponse
	b[1] = byte(h.opcode)
	binary.BigEndian.PutUint16(b[2:], uint16(keylen))
	b[4] = byte(extlen)
	binary.BigEndian.PutUint16(b[6:], uint16(status))
	binary.BigEndian.PutUint32(b[8:], uint32(bodylen))
	binary.BigEndian.PutUint32(b[12:], h.opaque)
	binary.BigEndian.PutUint64(b[16:], cas)
	c.out = append(c.out, b[:]...)
}

// binError is write_bin_error: an error reply that quiet mode never hides,
// after which swallow bytes of body are discarded.
func (c *conn) binError(h *reqHeader, status memcached.Status, swallow int64) {
	c.binErrorText(h, status, binErrText[status], swallow)
}

func (c *conn) binErrorText(h *reqHeader, status memcached.Status, text string, swallow int64) {
	mark := len(c.out)
	c.binHeader(h, status, 0, 0, len(text), 0)
	c.out = append(c.out, text...)
	c.swallowFrom(mark, swallow)
}

// binOK is write_bin_response: quiet commands say nothing on success.
func (c *conn) binOK(h *reqHeader, quiet bool, body []byte, cas uint64) {
	if quiet {
		return
	}
	c.binHeader(h, memcached.StatusNoError, 0, 0, len(body), cas)
	c.out = append(c.out, body...)
}

// unquiet maps a quiet opcode to its loud twin, as memcached does before
// dispatching.
func unquiet(op memcached.Opcode) (memcached.Opcode, bool) {
	switch op {
	case memcached.OpSetQ:
		return memcached.OpSet, true
	case memcached.OpAddQ:
		return memcached.OpAdd, true
	case memcached.OpReplaceQ:
		return memcached.OpReplace, true
	case memcached.OpDeleteQ:
		return memcached.OpDelete, true
	case memcached.OpIncrementQ:
		return memcached.OpIncrement, true
	case memcached.OpDecrementQ:
		return memcached.OpDecrement, true
	case memcached.OpQuitQ:
		return memcached.OpQuit, true
	case memcached.OpFlushQ:
		return memcached.OpFlush, true
	case memcached.OpAppendQ:
		return memcached.OpAppend, true
	case memcached.OpPrependQ:
		return memcached.OpPrepend, true
	case memcached.OpGetQ:
		return memcached.OpGet, true
	case memcached.OpGetKQ:
		return memcached.OpGetK, true
	case memcached.OpGATQ:
		return memcached.OpGAT, true
	case memcached.OpGATKQ:
		return memcached.OpGATK, true
	}
	return op, false
}

func (c *conn) binaryDispatch(h *reqHeader, ext, key []byte) (action, bool) {
	el, kl, bl := uint32(h.extlen), uint32(h.keylen), h.bodylen
	if kl > bl || kl+el > bl {
		c.binError(h, memcached.StatusUnknownCommand, 0)
		return actQuit, false
	}
	if c.s.cfg.sasl() && !c.authed {
		switch h.opcode {
		case memcached.OpSASLList, memcached.OpSASLAuth, memcached.OpSASLStep, memcached.OpVersion:
		default:
			c.binError(h, wireAuthError, 0)
			return actQuit, false
		}
	}
	cmd, quiet := unquiet(h.opcode)
	if kl > memcached.MaxKeyLen {
		return c.binProtocolError(h)
	}
	// memcached holds the value length in a C int: a bodylen near 4 GiB
	// turns negative, which it reports as too large without swallowing.
	vlen := int64(int32(bl - kl - el))
	st := c.s.st
	switch cmd {
	case memcached.OpVersion:
		if el != 0 || kl != 0 || bl != 0 {
			return c.binProtocolError(h)
		}
		c.binOK(h, quiet, []byte(Version), 0)
	case memcached.OpFlush:
		if kl != 0 || bl != el || (el != 0 && el != 4) {
			return c.binProtocolError(h)
		}
		var delay int64
		if el == 4 {
			delay = int64(binary.BigEndian.Uint32(ext))
		}
		st.flush(delay)
		c.binOK(h, quiet, nil, 0)
	case memcached.OpNoop:
		if el != 0 || kl != 0 || bl != 0 {
			return c.binProtocolError(h)
		}
		c.binOK(h, quiet, nil, 0)
	case memcached.OpSet, memcached.OpAdd, memcached.OpReplace:
		if el != 8 || kl == 0 || bl < kl+8 {
			return c.binProtocolError(h)
		}
		flags := binary.BigEndian.Uint32(ext)
		exp := st.realtime(int64(binary.BigEndian.Uint32(ext[4:])))
		mode := modeSet
		switch {
		case h.cas != 0:
			mode = modeCAS
		case cmd == memcached.OpAdd:
			mode = modeAdd
		case cmd == memcached.OpReplace:
			mode = modeReplace
		}
		return c.binStoreStart(h, cmd, mode, quiet, key, flags, exp, vlen)
	case memcached.OpAppend, memcached.OpPrepend:
		if kl == 0 || el != 0 {
			return c.binProtocolError(h)
		}
		mode := modeAppend
		if cmd == memcached.OpPrepend {
			mode = modePrepend
		}
		return c.binStoreStart(h, cmd, mode, quiet, key, 0, 0, vlen)
	case memcached.OpGet, memcached.OpGetK:
		if el != 0 || bl != kl || kl == 0 {
			return c.binProtocolError(h)
		}
		c.binGet(h, cmd, quiet, key, false, 0)
	case memcached.OpTouch, memcached.OpGAT, memcached.OpGATK:
		if el != 4 || kl == 0 {
			return c.binProtocolError(h)
		}
		exp := st.realtime(int64(binary.BigEndian.Uint32(ext)))
		c.binGet(h, cmd, quiet, key, true, exp)
	case memcached.OpDelete:
		if kl == 0 || el != 0 || bl != kl {
			return c.binProtocolError(h)
		}
		switch st.delete(key, h.cas) {
		case resStored:
			c.binOK(h, quiet, nil, 0)
		case resExists:
			c.binError(h, memcached.StatusKeyExists, 0)
		default:
			c.binError(h, memcached.StatusKeyNotFound, 0)
		}
	case memcached.OpIncrement, memcached.OpDecrement:
		if kl == 0 || el != 20 || bl != kl+20 {
			return c.binProtocolError(h)
		}
		c.binArith(h, cmd == memcached.OpIncrement, quiet, key, ext)
	case memcached.OpStat:
		if el != 0 {
			return c.binProtocolError(h)
		}
		// Body bytes past the key are left to be read as the next request,
		// as memcached does.
		c.binStats(h, key)
	case memcached.OpQuit:
		if kl != 0 || el != 0 || bl != 0 {
			return c.binProtocolError(h)
		}
		c.binOK(h, quiet, nil, 0)
		return actQuit, false
	case memcached.OpSASLList:
		if el != 0 || kl != 0 || bl != 0 {
			return c.binProtocolError(h)
		}
		if !c.s.cfg.sasl() {
			c.binError(h, memcached.StatusUnknownCommand, 0)
			break
		}
		c.binOK(h, false, []byte("PLAIN"), 0)
	case memcached.OpSASLAuth, memcached.OpSASLStep:
		if el != 0 || kl == 0 {
			return c.binProtocolError(h)
		}
		if !c.s.cfg.sasl() {
			c.binError(h, memcached.StatusUnknownCommand, vlen)
			break
		}
		if kl > maxSASLMech {
			c.binError(h, memcached.StatusInvalidArgs, vlen)
			break
		}
		if !st.sizeOK(int(kl), 0, vlen) {
			c.binError(h, memcached.StatusOutOfMemory, vlen)
			break
		}
		c.pend = pending{active: true, opcode: cmd,
			key: c.keyBuf[:copy(c.keyBuf[:], key)], vlen: int(vlen)}
		c.pendHdr = *h
		return c.binaryValue()
	default:
		// Verbosity lands here too: memcached 1.6 has no handler for it.
		// The swallow counts the whole body although extras and key were
		// already consumed, a memcached quirk kept on purpose.
		c.binError(h, memcached.StatusUnknownCommand, int64(int32(bl)))
	}
	return actMore, true
}

// binProtocolError is handle_binary_protocol_error: EINVAL, then hang up.
func (c *conn) binProtocolError(h *reqHeader) (action, bool) {
	c.binError(h, memcached.StatusInvalidArgs, 0)
	return actQuit, false
}

func (c *conn) binStoreStart(h *reqHeader, cmd memcached.Opcode, mode storeMode, quiet bool, key []byte, flags uint32, exp int64, vlen int64) (action, bool) {
	st := c.s.st
	if !st.sizeOK(len(key), flags, vlen) {
		st.tooLarge(key, cmd == memcached.OpSet, false)
		c.binError(h, memcached.StatusValueTooLarge, vlen)
		return actMore, true
	}
	if itemSize(len(key), flags, vlen) > st.maxBytes {
		st.tooLarge(key, cmd == memcached.OpSet, false)
		c.binErrorText(h, memcached.StatusOutOfMemory, "Out of memory allocating item", vlen)
		return actMore, true
	}
	c.pend = pending{active: true, mode: mode, opcode: cmd, noreply: quiet,
		key: c.keyBuf[:copy(c.keyBuf[:], key)], flags: flags, exp: exp, cas: h.cas, vlen: int(vlen)}
	c.pendHdr = *h
	return c.binaryValue()
}

// binaryValue completes a request once its value has arrived.
func (c *conn) binaryValue() (action, bool) {
	p := &c.pend
	if c.w-c.r < p.vlen {
		return actMore, false
	}
	value := c.buf[c.r : c.r+p.vlen]
	c.r += p.vlen
	p.active = false
	h := &c.pendHdr
	if p.opcode == memcached.OpSASLAuth || p.opcode == memcached.OpSASLStep {
		return c.binSASL(h, p.opcode, p.key, value)
	}
	res, cas := c.s.st.store(p.mode, p.key, p.flags, p.exp, value, p.cas)
	switch res {
	case resStored:
		c.binOK(h, p.noreply, nil, cas)
	case resExists:
		c.binError(h, memcached.StatusKeyExists, 0)
	case resNotFound:
		c.binError(h, memcached.StatusKeyNotFound, 0)
	case resNoMemory:
		c.binErrorText(h, memcached.StatusOutOfMemory, "Out of memory allocating item", 0)
	default:
		switch p.mode {
		case modeAdd:
			c.binError(h, memcached.StatusKeyExists, 0)
		case modeReplace:
			c.binError(h, memcached.StatusKeyNotFound, 0)
		default:
			c.binError(h, memcached.StatusItemNotStored, 0)
		}
	}
	return actMore, true
}

func (c *conn) binGet(h *reqHeader, cmd memcached.Opcode, quiet bool, key []byte, touch bool, exp int64) {
	withKey := cmd == memcached.OpGetK || cmd == memcached.OpGATK
	withValue := cmd != memcached.OpTouch
	hit := c.s.st.get(key, touch, exp, func(it *item) {
		body := 4
		kl := 0
		if withValue {
			body += len(it.value)
		}
		if withKey {
			kl = len(key)
			body += kl
		}
		c.binHeader(h, memcached.StatusNoError, 4, kl, body, it.cas)
		c.out = binary.BigEndian.AppendUint32(c.out, it.flags)
		if withKey {
			c.out = append(c.out, key...)
		}
		if withValue {
			c.refs = append(c.refs, it)
			c.out = append(c.out, it.value...)
		}
	})
	if hit || quiet {
		return
	}
	if withKey {
		c.binHeader(h, memcached.StatusKeyNotFound, 0, len(key), len(key), 0)
		c.out = append(c.out, key...)
		return
	}
	c.binError(h, memcached.StatusKeyNotFound, 0)
}

func (c *conn) binArith(h *reqHeader, incr, quiet bool, key, ext []byte) {
	st := c.s.st
	delta := binary.BigEndian.Uint64(ext)
	initial := binary.BigEndian.Uint64(ext[8:])
	expRaw := binary.BigEndian.Uint32(ext[16:])
	res, cas, out := st.delta(key, incr, delta, h.cas, c.num[:], c.held)
	var v [8]byte
	switch res {
	case deltaOK:
		n, _ := strtoull(out)
		binary.BigEndian.PutUint64(v[:], n)
		c.binOK(h, quiet, v[:], cas)
	case deltaNonNumeric:
		c.binError(h, memcached.StatusNonNumeric, 0)
	case deltaNoMemory:
		c.binErrorText(h, memcached.StatusOutOfMemory, "Out of memory incrementing value", 0)
	case deltaCASMismatch:
		c.binError(h, memcached.StatusKeyExists, 0)
	default:
		if expRaw == 0xffffffff {
			st.countDeltaMiss(incr)
			c.binError(h, memcached.StatusKeyNotFound, 0)
			return
		}
		binary.BigEndian.PutUint64(v[:], initial)
		r, cas := st.addInitial(key, appendUint(c.num[:0], initial), st.realtime(int64(expRaw)))
		switch r {
		case resStored:
			c.binOK(h, quiet, v[:], cas)
		case resNoMemory:
			c.binErrorText(h, memcached.StatusOutOfMemory, "Out of memory allocating new item", 0)
		default:
			c.binError(h, memcached.StatusItemNotStored, 0)
		}
	}
}

// binSASL runs PLAIN: "[authzid] NUL authcid NUL password". An empty first
// message asks for the credentials in a following step, as Cyrus SASL does.
func (c *conn) binSASL(h *reqHeader, op memcached.Opcode, mech, data []byte) (action, bool) {
	ok := false
	switch {
	case !bytes.EqualFold(mech, []byte("PLAIN")):
	case op == memcached.OpSASLAuth && len(data) == 0:
		c.saslStart = true
		c.binHeader(h, wireAuthContinue, 0, 0, 0, 0)
		return actMore, true
	case op == memcached.OpSASLStep && !c.saslStart:
	default:
		ok = c.checkPlain(data)
	}
	c.saslStart = false
	c.s.st.countAuth(ok)
	if ok {
		c.authed = true
		c.binOK(h, false, []byte("Authenticated"), 0)
	} else {
		c.binError(h, wireAuthError, 0)
	}
	return actMore, true
}

func (c *conn) checkPlain(data []byte) bool {
	authz, rest, ok := bytes.Cut(data, []byte{0})
	if !ok {
		return false
	}
	user, pass, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return false
	}
	cfg := &c.s.cfg
	if len(authz) != 0 && string(authz) != cfg.SASLUser {
		return false
	}
	userOK := subtle.ConstantTimeCompare(user, []byte(cfg.SASLUser))
	passOK := subtle.ConstantTimeCompare(pass, []byte(cfg.SASLPassword))
	return userOK&passOK == 1
}
