// Package leakcheck finds goroutines a test left running.
package leakcheck

import (
	"bytes"
	"fmt"
	"os"
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
// be on their way out). Call it first in a test that starts servers:
// cleanups run last-registered first, so its check runs last.
func Check(t TB) {
	t.Helper()
	before := snapshot()
	t.Cleanup(func() {
		t.Helper()
		if leaked := leakedSince(before); len(leaked) > 0 {
			t.Errorf("leakcheck: %d goroutine(s) still running after the test:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
	})
}

// Main runs the tests of a package and, if they pass, checks that no
// goroutine they started is still running; use it in TestMain as
// os.Exit(leakcheck.Main(m)).
func Main(m interface{ Run() int }) int {
	before := snapshot()
	code := m.Run()
	if code != 0 {
		return code
	}
	if leaked := leakedSince(before); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "leakcheck: %d goroutine(s) still running after the tests:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
		return 1
	}
	return 0
}

func snapshot() map[string]bool {
	ids := map[string]bool{}
	for _, g := range goroutines() {
		ids[id(g)] = true
	}
	return ids
}

// leakedSince waits up to 5 s for goroutines not in before to end and
// returns the stacks of those that remain.
func leakedSince(before map[string]bool) []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var leaked []string
		for _, g := range goroutines() {
			if !before[id(g)] && !ignored(g) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(20 * time.Millisecond)
	}
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
