//go:build race

package quiclb

// sync.Pool drops items at random under the race detector.
const raceEnabled = true
