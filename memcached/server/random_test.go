package server

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"luaserve/memcached"
)

// Randomised differential conversations: many short batches of commands
// drawn from a small key and value space, so that every verb meets every
// kind of stored value, compared with memcached reply by reply. Expiry is
// limited to "never", "already" and "far future" to stay clock-independent.
//
// memcached is not fully deterministic here: its LRU maintainer thread
// reclaims expired items in the background (curr_items, total_items), and
// a get on an item it has moved to the cold LRU queues an asynchronous
// bump that holds a reference, so a later incr/decr writes a new item
// instead of rewriting in place ("0" instead of "0 "). Those stats and the
// padding are masked, and a differing case is rerun once.

var (
	rndKeys   = []string{"a", "b", "c", "n"}
	rndValues = []string{"", "0", "7", "99", "100", "18446744073709551615", " 5", "5 ", "abc", "-1", "00000000000000000000001"}
	rndFlags  = []string{"0", "1", "4294967295"}
	rndExps   = []string{"0", "0", "0", "-1", "1000000000", "4102444800"}
	rndDeltas = []string{"0", "1", "5", "100", "18446744073709551615", "x"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randomTextBatch(r *rand.Rand) string {
	var sb strings.Builder
	for range 1 + r.IntN(12) {
		k := pick(r, rndKeys)
		nr := ""
		if r.IntN(6) == 0 {
			nr = " noreply"
		}
		switch r.IntN(14) {
		case 0, 1, 2:
			v := pick(r, rndValues)
			verb := pick(r, []string{"set", "set", "add", "replace", "append", "prepend"})
			fmt.Fprintf(&sb, "%s %s %s %s %d%s\r\n%s\r\n", verb, k, pick(r, rndFlags), pick(r, rndExps), len(v), nr, v)
		case 3:
			v := pick(r, rndValues)
			fmt.Fprintf(&sb, "cas %s 0 0 %d %d%s\r\n%s\r\n", k, len(v), r.IntN(12), nr, v)
		case 4, 5:
			fmt.Fprintf(&sb, "%s %s %s\r\n", pick(r, []string{"get", "gets"}), k, pick(r, rndKeys))
		case 6, 7:
			fmt.Fprintf(&sb, "%s %s %s%s\r\n", pick(r, []string{"incr", "decr"}), k, pick(r, rndDeltas), nr)
		case 8:
			fmt.Fprintf(&sb, "delete %s%s\r\n", k, nr)
		case 9:
			fmt.Fprintf(&sb, "touch %s %s%s\r\n", k, pick(r, rndExps), nr)
		case 10:
			fmt.Fprintf(&sb, "%s %s %s %s\r\n", pick(r, []string{"gat", "gats"}), pick(r, rndExps), k, pick(r, rndKeys))
		case 11:
			if r.IntN(4) == 0 {
				fmt.Fprintf(&sb, "flush_all%s\r\n", nr)
			} else {
				sb.WriteString("version\r\n")
			}
		case 12:
			sb.WriteString(pick(r, []string{"verbosity 1\r\n", "bogus\r\n", "set k\r\n", "incr\r\n", "\r\n"}))
		case 13:
			v := pick(r, rndValues)
			fmt.Fprintf(&sb, "set %s 0 0 %d\r\n%sXY\r\n", k, len(v), v) // bad data chunk
		}
	}
	return sb.String()
}

func randomBinaryBatch(r *rand.Rand) string {
	var rs []req
	exps := []uint32{0, 0, 0, 1000000000, 4102444800}
	for range 1 + r.IntN(12) {
		k := pick(r, rndKeys)
		cas := uint64(0)
		if r.IntN(4) == 0 {
			cas = uint64(r.IntN(12))
		}
		o := uint32(r.IntN(100))
		switch r.IntN(12) {
		case 0, 1, 2:
			op := pick(r, []memcached.Opcode{memcached.OpSet, memcached.OpAdd, memcached.OpReplace,
				memcached.OpSetQ, memcached.OpAddQ, memcached.OpReplaceQ})
			rs = append(rs, breq(op, k, setExtras(uint32(r.IntN(3)), pick(r, exps)), pick(r, rndValues)).withCAS(cas).withOpaque(o))
		case 3:
			op := pick(r, []memcached.Opcode{memcached.OpAppend, memcached.OpPrepend, memcached.OpAppendQ, memcached.OpPrependQ})
			rs = append(rs, breq(op, k, nil, pick(r, rndValues)).withCAS(cas).withOpaque(o))
		case 4, 5:
			op := pick(r, []memcached.Opcode{memcached.OpGet, memcached.OpGetK, memcached.OpGetQ, memcached.OpGetKQ})
			rs = append(rs, breq(op, k, nil, "").withOpaque(o))
		case 6, 7:
			op := pick(r, []memcached.Opcode{memcached.OpIncrement, memcached.OpDecrement, memcached.OpIncrementQ, memcached.OpDecrementQ})
			delta := pick(r, []uint64{0, 1, 5, 1 << 63, 18446744073709551615})
			exp := pick(r, []uint32{0, 0xffffffff, 4102444800})
			rs = append(rs, breq(op, k, incrExtras(delta, uint64(r.IntN(200)), exp), "").withCAS(cas).withOpaque(o))
		case 8:
			op := pick(r, []memcached.Opcode{memcached.OpDelete, memcached.OpDeleteQ})
			rs = append(rs, breq(op, k, nil, "").withCAS(cas).withOpaque(o))
		case 9:
			op := pick(r, []memcached.Opcode{memcached.OpTouch, memcached.OpGAT, memcached.OpGATQ, memcached.OpGATK, memcached.OpGATKQ})
			rs = append(rs, breq(op, k, u32(pick(r, exps)), "").withOpaque(o))
		case 10:
			if r.IntN(4) == 0 {
				rs = append(rs, breq(pick(r, []memcached.Opcode{memcached.OpFlush, memcached.OpFlushQ}), "", nil, "").withOpaque(o))
			} else {
				rs = append(rs, breq(memcached.OpNoop, "", nil, "").withOpaque(o))
			}
		case 11:
			rs = append(rs, breq(pick(r, []memcached.Opcode{memcached.OpVersion, memcached.OpVerbosity}), "", nil, "").withOpaque(o))
		}
	}
	rs = append(rs, breq(memcached.OpNoop, "", nil, ""))
	return string(pkts(rs...))
}

func randomCases(bin bool) []wireCase {
	var cs []wireCase
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 0x6d656d63))
		var steps []step
		for range 15 {
			if bin {
				steps = append(steps, s(randomBinaryBatch(r)))
			} else {
				steps = append(steps, s(randomTextBatch(r)))
			}
		}
		if bin {
			steps = append(steps, b(breq(memcached.OpStat, "", nil, "")))
		} else {
			steps = append(steps, s("stats\r\n"))
		}
		cs = append(cs, wireCase{name: fmt.Sprintf("seed %d", seed), bin: bin, steps: steps,
			attempts: 2, unpad: true, unstable: []string{"curr_items", "total_items", "bytes"}})
	}
	return cs
}

func TestWireRandomText(t *testing.T)   { runWireCases(t, randomCases(false)) }
func TestWireRandomBinary(t *testing.T) { runWireCases(t, randomCases(true)) }
