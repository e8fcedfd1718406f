package reliability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
)

// A backend that closes its idle kept-alive connections (as every server
// does after its keep-alive timeout) may close one just as the proxy
// sends a request on it. GET and HEAD are sent again on a new connection;
// a request with a body cannot be, so it must not be sent on a connection
// the backend may be closing. A 1 ms keep-alive timeout makes the race
// frequent enough to count.
func TestBackendClosesIdleConnections(t *testing.T) {
	const requests, workers = 2000, 8
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			leakcheck.Check(t)
			b := startHTTP(t, "a", local, func(_ http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) },
				func(s *http.Server) { s.IdleTimeout = time.Millisecond })
			_, _, addr := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, balancer.Config{}, b)})
			c := httpClient(t, &http.Transport{MaxIdleConnsPerHost: workers})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			y := load(ctx, workers, requests, func(_, _ int) error {
				var body io.Reader
				if method == http.MethodPost {
					body = strings.NewReader("hello")
				}
				req, err := http.NewRequest(method, "http://"+addr+"/", body)
				if err != nil {
					return err
				}
				resp, err := c.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d, %v", resp.StatusCode, err)
				}
				return nil
			})
			y.all(t, requests)
			Record(t, fmt.Sprintf("%d %ss (5-byte body for POST) over %d keep-alive connections through an HTTP listener to a backend closing idle connections after 1 ms", requests, method, workers),
				"%d sent, %d failed", y.sent.Load(), y.failed.Load())
		})
	}
}
