//go:build race

package memcached_test

// raceEnabled: the race detector adds allocations, so allocation tests skip.
const raceEnabled = true
