//go:build race

package netpoll

// The race detector allocates in operations that otherwise do not.
const raceEnabled = true
