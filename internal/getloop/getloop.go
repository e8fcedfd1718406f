// Package getloop is a test client that GETs one URL in a loop, each
// request on a new connection (or POSTs over keep-alive, StartPOST), and counts what happened: served,
// refused (the port was not listening) or failed otherwise. Tests that
// replace a listener, reload or upgrade under load run one and assert
// on the counts afterwards.
package getloop

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Loop is a running client loop. Its counters may be read while it
// runs; Stop ends it.
type Loop struct {
	// Served, Refused and Failed count requests answered, connection
	// attempts refused, and requests that failed another way.
	Served, Refused, Failed atomic.Int64
	// LastErr is the last error of a failed request, for messages.
	LastErr atomic.Value // error

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Start GETs url in a loop until Stop, handing each answered body to
// body if it is not nil.
func Start(url string, body func([]byte)) *Loop {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return start(func() (*http.Response, error) { return client.Get(url) }, body, client)
}

// StartPOST POSTs a small body to url in a loop until Stop, over one
// keep-alive connection at a time: a POST is never replayed by Go's
// client, so a connection closed under a request counts as Failed.
func StartPOST(url string) *Loop {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	return start(func() (*http.Response, error) {
		return client.Post(url, "text/plain", strings.NewReader("ping"))
	}, nil, client)
}

// start runs do in a loop until Stop; client's idle connections close
// when it ends.
func start(do func() (*http.Response, error), body func([]byte), client *http.Client) *Loop {
	l := &Loop{stop: make(chan struct{})}
	l.wg.Go(func() {
		defer client.CloseIdleConnections()
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			resp, err := do()
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					l.Refused.Add(1)
				} else {
					l.Failed.Add(1)
					l.LastErr.Store(err)
				}
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			l.Served.Add(1)
			if body != nil {
				body(b)
			}
		}
	})
	return l
}

// Stop ends the loop and waits for its last request. It may be called
// more than once.
func (l *Loop) Stop() {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
	})
}
