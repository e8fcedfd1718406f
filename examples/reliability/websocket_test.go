package reliability

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
)

// A WebSocket goes through an HTTP listener with a real WebSocket client
// and server: messages both ways, and a message the server sends first.
func TestWebSocketEcho(t *testing.T) {
	leakcheck.Check(t)
	b := startWebSocket(t, func(ctx context.Context, c *websocket.Conn) {
		if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
			return
		}
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	})
	l, _, addr := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, balancer.Config{}, b)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: httpClient(t, &http.Transport{})})
	if err != nil {
		t.Fatalf("dial through the listener: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("server's first message: %q, %v", msg, err)
	}
	for i := range 5 {
		want := fmt.Sprint("msg ", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "echo:"+want {
			t.Fatalf("echo %d: %q, %v", i, msg, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	if st := l.Stats(); st.Status[0] != 1 || st.BytesIn == 0 || st.BytesOut == 0 {
		t.Errorf("Stats: 1xx=%d in=%d out=%d, want 1 and bytes both ways", st.Status[0], st.BytesIn, st.BytesOut)
	}
}

// An open WebSocket holds a graceful Stop until its deadline, then is cut.
func TestWebSocketStop(t *testing.T) {
	leakcheck.Check(t)
	b := startWebSocket(t, func(ctx context.Context, c *websocket.Conn) { c.Read(ctx) })
	l, _, addr := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, balancer.Config{}, b)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{HTTPClient: httpClient(t, &http.Transport{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer stopCancel()
	if err := l.Stop(stopCtx); err != context.DeadlineExceeded {
		t.Errorf("Stop = %v, want the deadline", err)
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Error("the WebSocket survived a hard stop")
	}
}

// startWebSocket starts a backend that accepts a WebSocket on every
// request and hands it to serve, closing it when serve returns.
func startWebSocket(t *testing.T, serve func(context.Context, *websocket.Conn)) *backend {
	return startHTTP(t, "ws", local, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		serve(r.Context(), c)
	})
}
