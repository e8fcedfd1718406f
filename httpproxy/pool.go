package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/internal/netx"
)

// backendPool is the listener's fast path to backends for GET and HEAD
// requests without a body, the bulk of web traffic: kept-alive HTTP/1.1
// connections per backend address, each request written and its
// response read on the handler's own goroutine. http.Transport gives
// every connection a reader and a writer goroutine and hands each request
// between them over channels; here there is no hand-off, which saves
// scheduling and allocations on every request. Everything else (bodies,
// upgrades, other methods) goes through http.Transport.
//
// Only replayable requests take this path, so a request that fails on a
// reused connection (the backend closed it while idle) is sent again on a
// new one. The pool takes no global lock: a sync.Map finds the backend's
// idle list, which has a mutex of its own.
type backendPool struct {
	dialer  net.Dialer
	timeout time.Duration // response-header and body-silence timeout
	idleFor time.Duration // idle connections older than this are dropped
	maxIdle int
	closed  atomic.Bool
	hosts   sync.Map // addr -> *idleList
}

type idleList struct {
	mu    sync.Mutex
	conns []*backendConn
	dead  bool // pruned: connections handed back are closed
}

// backendConn is one kept-alive backend connection.
type backendConn struct {
	pool *backendPool
	list *idleList
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time // when it went idle
	body pooledBody
}

func newBackendPool(connect, timeout time.Duration) *backendPool {
	return &backendPool{
		dialer:  net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second},
		timeout: timeout,
		idleFor: 60 * time.Second,
		maxIdle: 1024,
	}
}

// fastPath reports whether r, as a server read it, may use the pool: a
// GET or HEAD without a body. A server's request without a body has a
// ContentLength of 0 (-1 is unknown); its Body is http.NoBody on
// HTTP/1 but an empty stream on HTTP/2, whose GETs must take the pool
// too.
func fastPath(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0) && r.ContentLength <= 0 && len(r.TransferEncoding) == 0
}

func (p *backendPool) list(addr string) *idleList {
	if l, ok := p.hosts.Load(addr); ok {
		return l.(*idleList)
	}
	l, _ := p.hosts.LoadOrStore(addr, new(idleList))
	return l.(*idleList)
}

// get returns an idle connection to addr, or nil.
func (p *backendPool) get(l *idleList) *backendConn {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for n := len(l.conns); n > 0; n = len(l.conns) {
		bc := l.conns[n-1]
		l.conns[n-1] = nil
		l.conns = l.conns[:n-1]
		if now.Sub(bc.used) < p.idleFor {
			return bc
		}
		bc.c.Close()
	}
	return nil
}

func (p *backendPool) put(bc *backendConn) {
	if p.closed.Load() {
		bc.c.Close()
		return
	}
	now := time.Now()
	bc.used = now
	l := bc.list
	l.mu.Lock()
	if l.dead || len(l.conns) >= p.maxIdle {
		l.mu.Unlock()
		bc.c.Close()
		return
	}
	// The list is a stack: the oldest connection is at the bottom. Drop
	// it if it has idled too long, so a quiet backend's connections do
	// not stay open for ever.
	if len(l.conns) > 0 && now.Sub(l.conns[0].used) >= p.idleFor {
		l.conns[0].c.Close()
		l.conns = append(l.conns[:0], l.conns[1:]...)
	}
	l.conns = append(l.conns, bc)
	l.mu.Unlock()
	if p.closed.Load() { // raced with closeIdle
		p.closeIdle()
	}
}

// closeIdle closes every idle connection; after it, connections handed
// back are closed.
func (p *backendPool) closeIdle() {
	p.closed.Store(true)
	p.hosts.Range(func(_, v any) bool {
		l := v.(*idleList)
		l.mu.Lock()
		for _, bc := range l.conns {
			bc.c.Close()
		}
		l.conns = nil
		l.mu.Unlock()
		return true
	})
}

// prune closes the idle connections to every address not in keep: the
// backends that left the groups.
func (p *backendPool) prune(keep map[string]bool) {
	p.hosts.Range(func(k, v any) bool {
		if keep[k.(string)] {
			return true
		}
		p.hosts.Delete(k)
		l := v.(*idleList)
		l.mu.Lock()
		l.dead = true
		for _, bc := range l.conns {
			bc.c.Close()
		}
		l.conns = nil
		l.mu.Unlock()
		return true
	})
}

func (p *backendPool) dial(ctx context.Context, addr string, l *idleList) (*backendConn, error) {
	c, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	bc := &backendConn{pool: p, list: l, c: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}
	bc.body.bc = bc
	return bc, nil
}

// roundTrip sends r to addr and returns the response, whose body hands
// the connection back to the pool when it has been read to the end.
func (p *backendPool) roundTrip(r *http.Request, addr string) (*http.Response, error) {
	ctx := r.Context()
	l := p.list(addr)
	bc := p.get(l)
	for {
		reused := bc != nil
		if !reused {
			var err error
			if bc, err = p.dial(ctx, addr, l); err != nil {
				return nil, err
			}
		}
		resp, err := bc.exchange(ctx, r)
		if err == nil {
			return resp, nil
		}
		bc.c.Close()
		if !reused || netx.IsTimeout(err) || ctx.Err() != nil {
			return nil, err
		}
		// The backend closed the idle connection: try a fresh one.
		bc = nil
	}
}

var errBadHeader = errors.New("listener: header value with a line break")

// exchange writes r and reads the response header.
func (bc *backendConn) exchange(ctx context.Context, r *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { bc.c.SetDeadline(aLongTimeAgo) })
	bc.body.stop = stop
	bc.c.SetDeadline(time.Now().Add(bc.pool.timeout))
	w := bc.bw
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") && uri != "*" {
		uri = r.URL.RequestURI()
	}
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(r.Host)
	w.WriteString("\r\n")
	for k, vv := range r.Header {
		for _, v := range vv {
			if v == "" && k == "User-Agent" {
				continue
			}
			if strings.ContainsAny(v, "\r\n") {
				stop()
				return nil, errBadHeader
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("\r\n")
	if err := w.Flush(); err != nil {
		stop()
		return nil, err
	}
	resp, err := http.ReadResponse(bc.br, r)
	if err != nil {
		stop()
		return nil, err
	}
	if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		// 1xx before the final response: not expected without a body
		// or Expect; treat the connection as unusable.
		resp.Body.Close()
		stop()
		return nil, errors.New("listener: unexpected informational response from backend")
	}
	bc.body.rc = resp.Body
	bc.body.keep = !resp.Close
	bc.body.done = false
	resp.Body = &bc.body
	return resp, nil
}

// aLongTimeAgo is a deadline in the past, to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// pooledBody is a backend response body that keeps each read within the
// request timeout and returns its connection to the pool once read to
// the end, or closes it when abandoned early.
type pooledBody struct {
	bc   *backendConn
	rc   io.ReadCloser
	stop func() bool
	keep bool // the connection may be reused after the body
	eof  bool
	done bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, http.ErrBodyReadAfterClose
	}
	b.bc.c.SetReadDeadline(time.Now().Add(b.bc.pool.timeout))
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *pooledBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// stop reports false if the request's context ended meanwhile and
	// the connection's deadline was cut.
	if stopped := b.stop(); !stopped || !b.keep || !b.eof {
		// Closing the connection first keeps rc.Close from draining
		// what is left of the body.
		b.bc.c.Close()
		b.rc.Close()
		return nil
	}
	b.rc.Close()
	b.bc.c.SetDeadline(time.Time{})
	b.bc.pool.put(b.bc)
	return nil
}
