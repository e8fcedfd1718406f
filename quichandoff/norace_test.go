//go:build !race

package quichandoff

const raceEnabled = false
