//go:build !race

package quiclb

const raceEnabled = false
