package reliability_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/examples/reliability"
	"github.com/lbkit/lbkit/listener"
	"github.com/stretchr/testify/assert"
)

// Request targets beyond HTTPOptions.MaxURIBytes get 414 and headers
// beyond MaxHeaderBytes 431, and neither reaches the backend; requests
// at the limits pass.
func TestHTTPOversized(t *testing.T) {
	const maxHeader = 16 << 10 // MaxURIBytes keeps its 8 KiB default
	b := startBackend(t, "b")
	l := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, b),
		HTTP: listener.HTTPOptions{MaxHeaderBytes: maxHeader}})
	target := func(n int) string { return "/" + strings.Repeat("a", n-1) }
	tests := []struct {
		name    string
		target  string
		headers string
		want    int
	}{
		{"target at MaxURIBytes", target(listener.DefaultMaxURIBytes), "", 200},
		{"target a byte over MaxURIBytes", target(listener.DefaultMaxURIBytes + 1), "", 414},
		{"query over MaxURIBytes", "/q?" + strings.Repeat("x", listener.DefaultMaxURIBytes), "", 414},
		{"target beyond MaxHeaderBytes", target(4 * maxHeader), "", 431},
		{"8 KiB field", "/big-field", "X-Big: " + strings.Repeat("x", 8<<10) + "\r\n", 200},
		{"field beyond MaxHeaderBytes", "/huge-field", "X-Big: " + strings.Repeat("x", 2*maxHeader) + "\r\n", 431},
		{"fields beyond MaxHeaderBytes", "/many-fields", strings.Repeat("X-Many: 0123456789012345678901234567890\r\n", 1000), 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(b.seen())
			status, _ := rawRequest(t, addr(l), "GET "+tt.target+" HTTP/1.1\r\nHost: x\r\n"+tt.headers+"Connection: close\r\n\r\n")
			reached := len(b.seen()) - before
			assert.Equal(t, tt.want, status)
			assert.Equal(t, tt.want == 200, reached == 1, "backend reached %d times", reached)
			reliability.Record(t, fmt.Sprintf("GET with a %d-byte target and %d bytes of extra fields (MaxHeaderBytes %d, MaxURIBytes %d)",
				len(tt.target), len(tt.headers), maxHeader, listener.DefaultMaxURIBytes), "status %d, backend reached %d times", status, reached)
		})
	}
}
