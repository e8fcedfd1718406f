package leakcheck

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a TB that records instead of failing.
type recorder struct {
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) finish() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestCheckFindsLeak(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	r := &recorder{}
	Check(r)
	go func() { <-stop }() // still running at the end
	r.finish()
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "TestCheckFindsLeak") {
		t.Errorf("Check reported %q, want one leak naming the test's goroutine", r.errs)
	}
}

func TestCheckWaitsForEndingGoroutines(t *testing.T) {
	r := &recorder{}
	Check(r)
	go time.Sleep(100 * time.Millisecond) // ends within the grace period
	r.finish()
	if len(r.errs) != 0 {
		t.Errorf("Check reported %q for a goroutine that ended", r.errs)
	}
}
