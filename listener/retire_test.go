package listener

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/getloop"
)

// A listener replaced by one on the same port retires: clients POSTing
// in loops over keep-alive through the changes see no request fail (a
// POST sent on a keep-alive connection as it closes is not replayed),
// and end on the new listener's backend.
func TestApplyRetiresTakenOver(t *testing.T) {
	leaks(t)
	a := startHTTPBackend(t, "a", nil)
	b := startHTTPBackend(t, "b", nil)
	in := newInstance(t)
	old := addListener(t, in, Config{Protocol: HTTP, Group: newGroup(t, nil, a.backend(100))})
	url := httpURL(old, "/")
	var loops []*getloop.Loop
	for range 4 {
		l := getloop.StartPOST(url)
		defer l.Stop()
		loops = append(loops, l)
	}
	servedMore := func(n int64) bool {
		for _, l := range loops {
			if l.Served.Load() <= n {
				return false
			}
		}
		return true
	}
	for i := range 10 {
		eventually(t, "every client served", func() bool { return servedMore(int64(10 * i)) })
		backend := []*httpBackend{a, b}[i%2]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ls, err := in.Apply(ctx, Change{
			Remove: []string{old.Name()},
			Add:    []Config{{Protocol: HTTP, Host: "127.0.0.1", Port: old.Port(), Group: newGroup(t, nil, backend.backend(100))}},
		})
		cancel()
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		old = ls[0]
	}
	eventually(t, "requests after the last change", func() bool { return servedMore(110) })
	if hits := b.hits.Load(); hits == 0 {
		t.Errorf("backend b: no request, want the replacements to serve")
	}
	for i, l := range loops {
		l.Stop()
		if f, r := l.Failed.Load(), l.Refused.Load(); f != 0 || r != 0 {
			t.Errorf("client %d, during 10 replacements: %d requests failed, %d refused (last: %v); want 0, 0", i, f, r, l.LastErr.Load())
		}
	}
}

// Instance.Retire retires an HTTP listener's keep-alive connections:
// one idle when Retire starts is served its next request, with
// "Connection: close", then closed; a TCP listener beside it stops as
// with Stop; Retire returns before its deadline.
func TestInstanceRetire(t *testing.T) {
	leaks(t)
	in := newInstance(t)
	hl := addListener(t, in, Config{Protocol: HTTP, Group: newGroup(t, nil, startHTTPBackend(t, "a", nil).backend(100)),
		HTTP: HTTPOptions{IdleTimeout: time.Minute}})
	tl := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, startEcho(t, "t").backend(100))})
	c, err := net.Dial("tcp", listenerAddr(hl))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	const post = "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nping"
	send := func() *http.Response {
		t.Helper()
		io.WriteString(c, post)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("response: %s, want 200 OK", resp.Status)
		}
		return resp
	}
	send()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	retired := make(chan error, 1)
	go func() { retired <- in.Retire(ctx) }()
	eventually(t, "the listeners to stop accepting", func() bool {
		for _, l := range []*Listener{hl, tl} {
			if c, err := net.Dial("tcp", listenerAddr(l)); err == nil {
				c.Close()
				return false
			}
		}
		return true
	})
	// A request racing the retire may still be answered keep-alive; the
	// next says "Connection: close".
	for i := 0; !send().Close; i++ {
		if i == 3 {
			t.Fatal("4 responses after Retire kept the connection alive, want Connection: close")
		}
	}
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after the last response = %d, %v; want EOF", n, err)
	}
	if err := recvWithin(t, retired, time.Minute+10*time.Second, "Retire to return"); err != nil {
		t.Errorf("Retire = %v, want nil", err)
	}
	for _, l := range []*Listener{hl, tl} {
		if st := l.State(); st != Stopped {
			t.Errorf("%s: %v after Retire, want stopped", l.Name(), st)
		}
	}
}
