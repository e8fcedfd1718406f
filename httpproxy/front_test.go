package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A stop's deadline holds even for a fast-lane connection that was
// parked, woke with a request and now writes its response to a client
// that stopped reading: the poller's close waits for that Wake, so the
// stop must end its write first. Shutdown and Retire alike return ctx's
// error soon after it is done, not when the client reads again.
func TestStopCutsStalledWrite(t *testing.T) {
	big := strings.Repeat("x", 16<<20) // beyond what the socket buffers hold
	for _, retire := range []bool{false, true} {
		t.Run(map[bool]string{false: "shutdown", true: "retire"}[retire], func(t *testing.T) {
			leaks(t)
			bigAsked := make(chan struct{}, 1)
			p := retireProxy(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/big" {
					bigAsked <- struct{}{}
					io.WriteString(w, big)
					return
				}
				io.WriteString(w, "b")
			})
			s, _ := retireServer(t, p, ServerConfig{IdleTimeout: time.Minute})
			c := connect(t, s, nil)
			br := bufio.NewReader(c)
			exchange(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			waitFor(t, "the idle connection to park", func() bool { return s.Parked() == 1 })
			// Woken by this request, the connection writes 16 MiB the
			// client never reads.
			if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-bigAsked:
			case <-time.After(10 * time.Second):
				t.Fatal("the request did not reach the backend")
			}
			time.Sleep(200 * time.Millisecond) // the write fills the socket buffers and waits

			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			stopped := make(chan error, 1)
			go func() {
				if retire {
					stopped <- s.Retire(ctx)
				} else {
					stopped <- s.Shutdown(ctx)
				}
			}()
			select {
			case err := <-stopped:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("stop = %v, want context.DeadlineExceeded", err)
				}
			case <-time.After(10 * time.Second):
				c.Close() // lets the stop end, so the test fails rather than hangs
				<-stopped
				t.Fatal("the stop did not return 10 s after its deadline: a stalled write held it")
			}
		})
	}
}
