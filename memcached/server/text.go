package server

import (
	"bytes"

	"luaserve/memcached"
)

// maxTokens is memcached's MAX_TOKENS: a line splits into at most 23
// tokens plus an unparsed remainder (which only get commands continue into).
const maxTokens = 24

// Text replies, spelled exactly as memcached 1.6.18 spells them.
var (
	rError          = []byte("ERROR\r\n")
	rStored         = []byte("STORED\r\n")
	rNotStored      = []byte("NOT_STORED\r\n")
	rExists         = []byte("EXISTS\r\n")
	rNotFound       = []byte("NOT_FOUND\r\n")
	rDeleted        = []byte("DELETED\r\n")
	rTouched        = []byte("TOUCHED\r\n")
	rOK             = []byte("OK\r\n")
	rEnd            = []byte("END\r\n")
	rReset          = []byte("RESET\r\n")
	rMN             = []byte("MN\r\n")
	rVersion        = []byte("VERSION " + Version + "\r\n")
	rBadFormat      = []byte("CLIENT_ERROR bad command line format\r\n")
	rBadChunk       = []byte("CLIENT_ERROR bad data chunk\r\n")
	rBadExptime     = []byte("CLIENT_ERROR invalid exptime argument\r\n")
	rBadDelta       = []byte("CLIENT_ERROR invalid numeric delta argument\r\n")
	rNonNumeric     = []byte("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
	rDeleteUsage    = []byte("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n")
	rDetailUsage    = []byte("CLIENT_ERROR usage: stats detail on|off|dump\r\n")
	rTooLarge       = []byte("SERVER_ERROR object too large for cache\r\n")
	rNoMemStore     = []byte("SERVER_ERROR out of memory storing object\r\n")
	rNoMemDelta     = []byte("SERVER_ERROR out of memory\r\n")
	rNoShutdown     = []byte("ERROR: shutdown not enabled\r\n")
	rValue          = []byte("VALUE ")
	crlf            = []byte("\r\n")
	httpVersionMark = []byte("HTTP/")
)

// tokenize is memcached's tokenize_command: split on single spaces only,
// skipping empty tokens; after 23 tokens the rest of the line is returned
// unparsed.
func tokenize(line []byte, toks *[maxTokens - 1][]byte) (n int, rest []byte) {
	s := 0
	for i := 0; i < len(line); i++ {
		if line[i] != ' ' {
			continue
		}
		if s != i {
			toks[n] = line[s:i]
			n++
			if n == maxTokens-1 {
				if i+1 < len(line) {
					return n, line[i+1:]
				}
				return n, nil
			}
		}
		s = i + 1
	}
	if s != len(line) {
		toks[n] = line[s:]
		n++
	}
	return n, nil
}

// textStep handles one text request. ok is false when it needs more input
// or the connection must end (act says which).
func (c *conn) textStep() (act action, ok bool) {
	if c.pend.active {
		return c.textValue()
	}
	avail := c.buf[c.r:c.w]
	nl := bytes.IndexByte(avail, '\n')
	if nl < 0 {
		if len(avail) > maxTextLine && !isGetLine(avail) {
			return actClose, false
		}
		return actMore, false
	}
	line := avail[:nl]
	c.r += nl + 1
	if nl > 1 && line[nl-1] == '\r' {
		line = line[:nl-1]
	}
	// memcached handles the line as a C string.
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	return c.textCommand(line)
}

// isGetLine reports whether an overlong line may continue: memcached lets
// only multi-key gets grow past 2048 bytes.
func isGetLine(b []byte) bool {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i > 100 {
		return false
	}
	b = b[i:]
	return bytes.HasPrefix(b, []byte("get ")) || bytes.HasPrefix(b, []byte("gets "))
}

func (c *conn) reply(noreply bool, b []byte) {
	if !noreply {
		c.out = append(c.out, b...)
	}
}

func (c *conn) textCommand(line []byte) (action, bool) {
	n, rest := tokenize(line, &c.toks)
	nt := n + 1 // memcached counts the terminal token
	if n == 0 || len(c.toks[0]) < 2 {
		c.out = append(c.out, rError...)
		return actMore, true
	}
	cmd := c.toks[0]
	want := func(ok bool) bool {
		if !ok {
			c.out = append(c.out, rError...)
		}
		return ok
	}
	switch string(cmd) {
	case "get", "gets", "gat", "gats":
		if want(nt >= 3) {
			c.textGet(n, rest, cmd[len(cmd)-1] == 's', cmd[1] == 'a')
		}
	case "set", "add", "replace", "append", "prepend":
		if want(nt == 6 || nt == 7) {
			return c.textUpdate(n, textMode(cmd), false)
		}
	case "cas":
		if want(nt == 7 || nt == 8) {
			return c.textUpdate(n, modeCAS, true)
		}
	case "incr", "decr":
		if want(nt == 4 || nt == 5) {
			c.textArith(n, cmd[0] == 'i')
		}
	case "delete":
		if want(nt >= 3 && nt <= 5) {
			c.textDelete(n)
		}
	case "touch":
		if want(nt == 4 || nt == 5) {
			c.textTouch(n)
		}
	case "flush_all":
		if want(nt >= 2 && nt <= 4) {
			c.textFlush(n)
		}
	case "stats":
		c.textStats(n)
	case "version":
		c.out = append(c.out, rVersion...)
	case "quit":
		return actQuit, false
	case "verbosity":
		if want(nt == 3 || nt == 4) {
			noreply := c.noreply(n)
			v, ok := safeStrtoul(c.toks[1])
			if !ok {
				c.reply(noreply, rBadFormat)
			} else {
				c.s.verbosity.Store(min(v, 2))
				c.reply(noreply, rOK)
			}
		}
	case "shutdown":
		c.out = append(c.out, rNoShutdown...)
	case "mn":
		c.out = append(c.out, rMN...)
		c.flushNow = true
	case "me":
		c.out = append(c.out, rBadFormat...)
	default:
		// memcached groups commands by first letter and answers ERROR
		// within a group; only outside them does it spot HTTP and hang up.
		grouped := bytes.IndexByte([]byte("gsacidt"), cmd[0]) >= 0 || (cmd[0] == 'm' && len(cmd) == 2)
		if !grouped && bytes.HasPrefix(c.toks[n-1], httpVersionMark) {
			return actClose, false
		}
		c.out = append(c.out, rError...)
	}
	return actMore, true
}

func textMode(cmd []byte) storeMode {
	switch string(cmd) {
	case "add":
		return modeAdd
	case "replace":
		return modeReplace
	case "append":
		return modeAppend
	case "prepend":
		return modePrepend
	}
	return modeSet
}

// noreply is set_noreply_maybe: the last real token decides.
func (c *conn) noreply(n int) bool {
	return string(c.toks[n-1]) == "noreply"
}

func (c *conn) textUpdate(n int, mode storeMode, withCAS bool) (action, bool) {
	noreply := c.noreply(n)
	key := c.toks[1]
	if len(key) > memcached.MaxKeyLen {
		c.reply(noreply, rBadFormat)
		return actMore, true
	}
	flags, ok1 := safeStrtoul(c.toks[2])
	exptime, ok2 := safeStrtol(c.toks[3])
	vlen, ok3 := safeStrtol(c.toks[4])
	if !ok1 || !ok2 || !ok3 {
		c.reply(noreply, rBadFormat)
		return actMore, true
	}
	var cas uint64
	if withCAS {
		var ok bool
		if cas, ok = strtoull(c.toks[5]); !ok {
			c.reply(noreply, rBadFormat)
			return actMore, true
		}
	}
	if vlen < 0 {
		c.reply(noreply, rBadFormat)
		return actMore, true
	}
	st := c.s.st
	exp := st.realtime(textExptime(exptime))
	if !st.sizeOK(len(key), flags, int64(vlen)) || itemSize(len(key), flags, int64(vlen)) > st.maxBytes {
		msg := rTooLarge
		if st.sizeOK(len(key), flags, int64(vlen)) {
			msg = rNoMemStore
		}
		st.tooLarge(key, mode == modeSet, true)
		mark := len(c.out)
		c.reply(noreply, msg)
		c.swallowFrom(mark, int64(vlen)+2)
		return actMore, true
	}
	c.pend = pending{
		active: true, mode: mode, noreply: noreply,
		key: c.keyBuf[:copy(c.keyBuf[:], key)], flags: flags, exp: exp, cas: cas,
		vlen: int(vlen) + 2,
	}
	return c.textValue()
}

// textValue completes a storage command once its data block has arrived.
func (c *conn) textValue() (action, bool) {
	p := &c.pend
	if c.w-c.r < p.vlen {
		return actMore, false
	}
	data := c.buf[c.r : c.r+p.vlen]
	c.r += p.vlen
	p.active = false
	if data[len(data)-2] != '\r' || data[len(data)-1] != '\n' {
		c.s.st.countSet()
		c.reply(p.noreply, rBadChunk)
		return actMore, true
	}
	res, _ := c.s.st.store(p.mode, p.key, p.flags, p.exp, data[:len(data)-2], p.cas)
	switch res {
	case resStored:
		c.reply(p.noreply, rStored)
	case resExists:
		c.reply(p.noreply, rExists)
	case resNotFound:
		c.reply(p.noreply, rNotFound)
	case resNoMemory:
		c.reply(p.noreply, rNoMemStore)
	default:
		c.reply(p.noreply, rNotStored)
	}
	return actMore, true
}

func (c *conn) textGet(n int, rest []byte, withCAS, touch bool) {
	st := c.s.st
	var exp int64
	first := 1
	if touch {
		e, ok := safeStrtol(c.toks[1])
		if !ok {
			c.out = append(c.out, rBadExptime...)
			return
		}
		exp = st.realtime(textExptime(e))
		first = 2
	}
	emit := func(it *item) {
		c.refs = append(c.refs, it)
		c.out = append(c.out, rValue...)
		c.out = append(c.out, it.key...)
		c.out = append(c.out, ' ')
		c.out = appendUint(c.out, uint64(it.flags))
		c.out = append(c.out, ' ')
		c.out = appendUint(c.out, uint64(len(it.value)))
		if withCAS {
			c.out = append(c.out, ' ')
			c.out = appendUint(c.out, it.cas)
		}
		c.out = append(c.out, crlf...)
		c.out = append(c.out, it.value...)
		c.out = append(c.out, crlf...)
	}
	for {
		for _, key := range c.toks[first:n] {
			if len(key) > memcached.MaxKeyLen {
				// memcached drops every reply still queued on the
				// connection here, not just this command's.
				clear(c.refs)
				c.refs = c.refs[:0]
				c.out = append(c.out[:0], rBadFormat...)
				return
			}
			st.get(key, touch, exp, emit)
		}
		if rest == nil {
			break
		}
		n, rest = tokenize(rest, &c.toks)
		first = 0
	}
	c.out = append(c.out, rEnd...)
	c.flushNow = true
}

func (c *conn) textArith(n int, incr bool) {
	noreply := c.noreply(n)
	key := c.toks[1]
	if len(key) > memcached.MaxKeyLen {
		c.reply(noreply, rBadFormat)
		return
	}
	d, ok := strtoull(c.toks[2])
	if !ok {
		c.reply(noreply, rBadDelta)
		return
	}
	res, _, out := c.s.st.delta(key, incr, d, 0, c.num[:], c.held)
	switch res {
	case deltaOK:
		if !noreply {
			c.out = append(append(c.out, out...), crlf...)
		}
	case deltaNonNumeric:
		c.reply(noreply, rNonNumeric)
	case deltaNoMemory:
		c.reply(noreply, rNoMemDelta)
	default:
		c.s.st.countDeltaMiss(incr)
		c.reply(noreply, rNotFound)
	}
}

func (c *conn) textDelete(n int) {
	nt := n + 1
	noreply := false
	if nt > 3 {
		holdZero := string(c.toks[2]) == "0"
		noreply = c.noreply(n)
		valid := (nt == 4 && (holdZero || noreply)) || (nt == 5 && holdZero && noreply)
		if !valid {
			c.reply(noreply, rDeleteUsage)
			return
		}
	}
	key := c.toks[1]
	if len(key) > memcached.MaxKeyLen {
		c.reply(noreply, rBadFormat)
		return
	}
	if c.s.st.delete(key, 0) == resStored {
		c.reply(noreply, rDeleted)
	} else {
		c.reply(noreply, rNotFound)
	}
}

func (c *conn) textTouch(n int) {
	noreply := c.noreply(n)
	key := c.toks[1]
	if len(key) > memcached.MaxKeyLen {
		c.reply(noreply, rBadFormat)
		return
	}
	e, ok := safeStrtol(c.toks[2])
	if !ok {
		c.reply(noreply, rBadExptime)
		return
	}
	st := c.s.st
	if st.touch(key, st.realtime(textExptime(e)), nil) {
		c.reply(noreply, rTouched)
	} else {
		c.reply(noreply, rNotFound)
	}
}

func (c *conn) textFlush(n int) {
	noreply := c.noreply(n)
	var delay int32
	plain := 2
	if noreply {
		plain = 3
	}
	if n+1 != plain {
		var ok bool
		if delay, ok = safeStrtol(c.toks[1]); !ok {
			c.s.st.countFlush()
			c.reply(noreply, rBadExptime)
			return
		}
	}
	c.s.st.flush(int64(delay))
	c.reply(noreply, rOK)
}
