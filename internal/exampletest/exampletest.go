// Package exampletest runs lbkit's example programs in their tests: in
// the background until the test ends, with their output captured. The
// examples listen on port 0 and report the address they bound.
package exampletest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// Start runs run in the background and waits up to 10 s for it to call
// ready. It returns what ready was given and a function that cancels run
// and checks it returned nil within 10 s; the test's cleanup calls it
// too.
func Start[R any](t testing.TB, run func(ctx context.Context, ready func(R)) error) (R, func()) {
	t.Helper()
	readyc := make(chan R, 1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, func(r R) { readyc <- r }) }()
	var r R
	select {
	case r = <-readyc:
	case err := <-errc:
		cancel()
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("not ready after 10s")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("run did not return 10s after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// Output collects what a running example writes; it is safe for
// concurrent use.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
