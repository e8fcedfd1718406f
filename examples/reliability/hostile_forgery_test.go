package reliability_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/examples/reliability"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Client-supplied address headers never change the ACL's decision: it
// judges the connection's source (127.0.0.1), whatever the client claims.
func TestHTTPForgedForwardedForACL(t *testing.T) {
	const forged = "10.0.0.1"
	tests := []struct {
		name  string
		mode  acl.Mode
		entry string
		want  int
	}{
		{"blacklist of the client", acl.Blacklist, "127.0.0.1", 403},
		{"whitelist of the forged address", acl.Whitelist, forged, 403},
		{"whitelist of the client", acl.Whitelist, "127.0.0.1", 200},
		{"blacklist of the forged address", acl.Blacklist, forged, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := acl.ParseEntries(tt.entry)
			require.NoError(t, err)
			g, err := acl.NewGroup(acl.GroupConfig{Name: "hostile", Family: acl.IPv4}, entries...)
			require.NoError(t, err)
			pol, err := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: tt.mode, Family: acl.IPv4})
			require.NoError(t, err)
			b := startBackend(t, "b")
			l := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, b), ACL: pol})
			c := newClient(t)
			const requests = 10
			got := map[int]int{}
			for range requests {
				status, _ := get(c, "http://"+addr(l)+"/", "X-Forwarded-For", forged, "X-Real-IP", forged,
					"Forwarded", "for="+forged, "True-Client-IP", forged)
				got[status]++
			}
			reached, refused := len(b.seen()), l.Stats().RefusedACL
			assert.Equal(t, map[int]int{tt.want: requests}, got, "statuses")
			if tt.want == 403 {
				assert.Zero(t, reached, "requests that reached the backend")
				assert.EqualValues(t, requests, refused, "Stats.RefusedACL")
			} else {
				assert.Equal(t, requests, reached, "requests that reached the backend")
			}
			reliability.Record(t, fmt.Sprintf("%d requests from 127.0.0.1 claiming %s in X-Forwarded-For, X-Real-IP, Forwarded and True-Client-IP; %s", requests, forged, tt.name),
				"statuses %v, backend reached %d times, RefusedACL %d", got, reached, refused)
		})
	}
}

// Session cookies that are forged, tampered with, replayed for a backend
// that left or is unhealthy, or issued by another listener only ever
// route to a current healthy member of the listener's group.
func TestHTTPForgedSessionCookies(t *testing.T) {
	a, b, c, d := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c"), startBackend(t, "d")
	group := newGroup(t, a, b, c, d)
	l := addListener(t, listener.Config{Protocol: listener.HTTP, Group: group,
		HTTP: listener.HTTPOptions{Options: httpproxy.Options{StickySession: &session.Config{}}}})
	other := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, startBackend(t, "x")),
		HTTP: listener.HTTPOptions{Options: httpproxy.Options{StickySession: &session.Config{}}}})
	client := newClient(t)
	// cookies maps backend ID to a SERVERID value issued for it.
	cookies := map[string]string{}
	for i := 0; i < 40 && len(cookies) < 5; i++ {
		from := l
		if i%2 == 1 {
			from = other
		}
		status, h := get(client, "http://"+addr(from)+"/")
		require.Equal(t, 200, status)
		for _, ck := range (&http.Response{Header: h}).Cookies() {
			if ck.Name == "SERVERID" {
				cookies[h.Get("X-Backend")] = ck.Value
			}
		}
	}
	require.Len(t, cookies, 5, "a cookie for each of a, b, c, d and the other listener's x")
	status, h := get(client, "http://"+addr(l)+"/", "Cookie", "SERVERID="+cookies["c"])
	require.Equal(t, "c", h.Get("X-Backend"), "a genuine cookie sticks (status %d)", status)

	require.NoError(t, group.SetHealthy("b", false))
	require.NoError(t, group.Remove("c"))
	healthy, seenB, seenC := []string{"a", "d"}, len(b.seen()), len(c.seen())
	random := make([]byte, 33)
	rand.Read(random)
	flip := func(s string, i int) string { return s[:i] + string(s[i]^1) + s[i+1:] }
	tests := []struct{ name, cookie string }{
		{"replayed for an unhealthy backend", cookies["b"]},
		{"replayed for a removed backend", cookies["c"]},
		{"from another listener", cookies["x"]},
		{"tampered first byte", flip(cookies["d"], 0)},
		{"tampered backend tag", flip(cookies["b"], 12)},
		{"tampered last byte", flip(cookies["c"], len(cookies["c"])-1)},
		{"truncated", cookies["b"][:20]},
		{"random token", base64.RawURLEncoding.EncodeToString(random)},
		{"backend ID", "b"},
		{"backend address", b.member().Addr},
		{"empty", ""},
		{"4 KiB", strings.Repeat("A", 4<<10)},
		{"two cookies", cookies["c"] + "; SERVERID=" + cookies["b"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const requests = 10
			got := map[string]int{}
			for range requests {
				status, h := get(client, "http://"+addr(l)+"/", "Cookie", "SERVERID="+tt.cookie)
				assert.Equal(t, 200, status)
				got[h.Get("X-Backend")]++
			}
			for id := range got {
				assert.Contains(t, healthy, id, "served by")
			}
			reliability.Record(t, fmt.Sprintf("%d requests with a SERVERID cookie %s (group a, b unhealthy, c removed, d)", requests, tt.name),
				"served by %v", got)
		})
	}
	assert.Equal(t, []int{seenB, seenC}, []int{len(b.seen()), len(c.seen())}, "requests b and c got after leaving")
}
