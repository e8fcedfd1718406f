// Package leakcheck finds goroutines a test left running.
package leakcheck

import (
	"bytes"
	"runtime"
	"strings"
	"time"
)

// TB is the part of testing.TB that Check uses.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Check records the running goroutines and, when the test ends, fails it
// if others are still running after a grace period of up to 5 s (they may
// be on their way out). Call it first in a test that starts servers.
func Check(t TB) {
	t.Helper()
	before := map[string]bool{}
	for _, g := range goroutines() {
		before[id(g)] = true
	}
	t.Cleanup(func() {
		t.Helper()
		var leaked []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked = leaked[:0]
			for _, g := range goroutines() {
				if !before[id(g)] && !ignored(g) {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(leaked) > 0 {
			t.Errorf("leakcheck: %d goroutine(s) still running after the test:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
	})
}

// Count returns the number of goroutines, less the runtime's and the
// testing framework's own.
func Count() int {
	n := 0
	for _, g := range goroutines() {
		if !ignored(g) {
			n++
		}
	}
	return n
}

func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var gs []string
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		gs = append(gs, string(g))
	}
	return gs
}

// id returns "goroutine N" from a stack dump.
func id(g string) string {
	if i := strings.Index(g, " ["); i > 0 {
		return g[:i]
	}
	return g
}

// ignored reports goroutines that belong to the runtime, the test
// framework or this package rather than to the code under test.
func ignored(g string) bool {
	for _, s := range []string{
		"testing.tRunner(",      // the test itself and its parents
		"testing.(*M).",         // the test main
		"testing.runFuzzing",    // the fuzzing engine
		"runtime.goexit0",       // exiting
		"os/signal.signal_recv", // signal.Notify's loop
		"leakcheck.goroutines",  // the caller of runtime.Stack
	} {
		if strings.Contains(g, s) {
			return true
		}
	}
	return false
}
