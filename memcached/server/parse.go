package server

import "math"

// The number parsers below reproduce the C library calls memcached's
// safe_strto* helpers are built on (strtoull/strtol in base 10, on a 64-bit
// build), because their odd corners are visible on the wire: leading
// whitespace and a sign are accepted, a value stops at whitespace, results
// are silently truncated to 32 bits, and "-1" is refused for unsigned
// fields only because it wraps to a huge number.

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// cNumber scans [space][sign]digits. ok is false when no digit was found
// (C's str == endptr); overflow reports a magnitude beyond 64 bits.
func cNumber(b []byte) (neg bool, mag uint64, overflow bool, end int, ok bool) {
	i := 0
	for i < len(b) && isCSpace(b[i]) {
		i++
	}
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			overflow = true
		} else {
			mag = mag*10 + d
		}
		i++
	}
	return neg, mag, overflow, i, i > start
}

// endOK is memcached's check that the number ends the token: at the end of
// the string or at whitespace.
func endOK(b []byte, end int) bool {
	return end == len(b) || isCSpace(b[end])
}

// strtoull is safe_strtoull.
func strtoull(b []byte) (uint64, bool) {
	neg, mag, overflow, end, ok := cNumber(b)
	if !ok || overflow || !endOK(b, end) {
		return 0, false
	}
	v := mag
	if neg {
		v = -mag
	}
	if int64(v) < 0 && neg {
		return 0, false
	}
	return v, true
}

// safeStrtoul is safe_strtoul: an unsigned long truncated to 32 bits.
func safeStrtoul(b []byte) (uint32, bool) {
	v, ok := strtoull(b)
	return uint32(v), ok
}

// safeStrtol is safe_strtol: a long truncated to 32 bits.
func safeStrtol(b []byte) (int32, bool) {
	neg, mag, overflow, end, ok := cNumber(b)
	if !ok || overflow || !endOK(b, end) {
		return 0, false
	}
	if (!neg && mag > math.MaxInt64) || (neg && mag > 1<<63) {
		return 0, false // ERANGE
	}
	v := int64(mag)
	if neg {
		v = -v
	}
	return int32(v), true
}

// appendUint appends v in decimal.
func appendUint(dst []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, tmp[i:]...)
}
