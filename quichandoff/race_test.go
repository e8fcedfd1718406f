//go:build race

package quichandoff

// The race detector changes what allocates (crypto/rand among others).
const raceEnabled = true
