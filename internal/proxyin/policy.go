package proxyin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/lbkit/lbkit/internal/cfgerr"
	"github.com/lbkit/lbkit/internal/netx"
	proxyproto "github.com/pires/go-proxyproto"
)

// Errors of Policy.Read: a trusted peer that sent no header where one is
// required (its wait ran out, or it began its stream without one), and a
// header that is malformed, or cut short by the wait.
var (
	ErrMissing = errors.New("proxyin: no PROXY header from a trusted peer")
	ErrBad     = errors.New("proxyin: malformed PROXY header")
)

// Policy is what a listener does with the start of its connections:
// which peers' PROXY headers it reads, whether they must send one, and
// how long it waits for it. The zero value reads no one's. Read is the
// method callers want. Immutable once made; safe for concurrent use.
type Policy struct {
	// From are the peers read for a header: the balancers in front.
	From Trust
	// Required refuses a trusted peer that sends no header. If false,
	// such a peer is taken as the client, as it is.
	Required bool
	// Timeout bounds the wait for the header, from the connection's
	// accept; New fills in the default.
	Timeout time.Duration
	// Now is the clock the wait starts from. If nil, time.Now.
	Now func() time.Time
}

// New returns the Policy of the public AcceptProxy settings
// (httpproxy.AcceptProxy, which package listener aliases): it reads
// the headers of peers in from, refuses a peer that sends none if
// required, waits timeout for a header, def if timeout is zero, on
// clock now. It is nil when from is empty: no one is read. This is the
// one place those fields' rules live, for the HTTP front door and the
// TCP listeners alike; a refused field is pkg's ConfigError, named as
// both packages' AcceptProxy fields are ("AcceptProxy.From[2]").
func New(pkg string, from []netip.Prefix, required bool, timeout, def time.Duration, now func() time.Time) (*Policy, error) {
	t, bad, ok := NewTrust(from)
	switch {
	case !ok:
		return nil, cfgerr.New(pkg, fmt.Sprintf("AcceptProxy.From[%d]", bad), from[bad], "not a valid prefix")
	case t.Empty() && (required || timeout != 0):
		// Required or a wait with no one to read would silently do
		// nothing: whoever set them expects headers to be read.
		return nil, cfgerr.New(pkg, "AcceptProxy.From", "empty", "needs the trusted balancers' prefixes")
	case t.Empty():
		return nil, nil
	case timeout < 0:
		return nil, cfgerr.New(pkg, "AcceptProxy.Timeout", timeout, "negative")
	case timeout == 0:
		timeout = def
	}
	return &Policy{From: t, Required: required, Timeout: timeout, Now: now}, nil
}

// Result is the client a connection stands for.
type Result struct {
	// Src is the real client and Dst the address it connected to, as
	// the header says; the connection's own two ends when the peer is
	// not trusted, sent no header, or sent one naming no IP client (a
	// v2 LOCAL command, a front balancer's health check; v1 UNKNOWN; a
	// unix socket).
	Src, Dst netip.AddrPort
	// Proxied says a header named the client.
	Proxied bool
	// Pending are bytes read past the header: the start of the client's
	// stream, which the caller must deliver before reading on.
	Pending []byte
}

// headerBuf is the read buffer: a v1 header (at most 107 bytes) must
// arrive in one read, as go-proxyproto requires; a v2 header with large
// TLVs is read on through it.
const headerBuf = 512

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, headerBuf) }}

// aLongTimeAgo is a deadline in the past: it ends a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// Read returns the client that connection c, whose ends are src and
// dst, stands for. A peer outside From is not read: its Result is src
// and dst. A trusted peer's header is waited for at most Timeout, and
// less if ctx ends first; it returns ErrMissing or ErrBad (wrapping
// go-proxyproto's error or the timeout) when the connection must be
// refused. It leaves c without a read deadline.
func (p *Policy) Read(ctx context.Context, c net.Conn, src, dst netip.AddrPort) (Result, error) {
	res := Result{Src: src, Dst: dst}
	if !p.From.Contains(src.Addr()) {
		return res, nil
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	c.SetReadDeadline(now().Add(p.Timeout))
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(aLongTimeAgo) })
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	h, err := proxyproto.Read(br)
	if !stop() {
		return res, ctx.Err()
	}
	c.SetReadDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		res.Pending = bytes.Clone(b)
	}
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol),
		netx.IsTimeout(err) && !signaturePrefix(res.Pending): // silent, or not a header
		if p.Required {
			return res, fmt.Errorf("%w: %w", ErrMissing, err)
		}
		// Taken as it is: a peer that speaks first, a health check
		// straight to the listener; or one that waits for the server
		// to speak, after Timeout.
		return res, nil
	case err != nil:
		return res, fmt.Errorf("%w: %w", ErrBad, err)
	case h.Command.IsLocal():
		return res, nil
	}
	s, sok := ipAddr(h.SourceAddr)
	d, dok := ipAddr(h.DestinationAddr)
	if !sok || !dok {
		return res, nil // a unix socket: no IP client to name
	}
	res.Src, res.Dst, res.Proxied = s, d, true
	return res, nil
}

// signaturePrefix reports whether b, cut short by the wait, may be the
// start of a header: the wait is what ended a header then, while the
// start of anything else ("POST", a binary protocol's first bytes), read
// to the wait by go-proxyproto's 12-byte peek, is no header at all.
func signaturePrefix(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	return bytes.HasPrefix(proxyproto.SIGV1, b[:min(len(b), len(proxyproto.SIGV1))]) && (len(b) <= len(proxyproto.SIGV1) || b[len(proxyproto.SIGV1)] == ' ') ||
		bytes.HasPrefix(proxyproto.SIGV2, b[:min(len(b), len(proxyproto.SIGV2))])
}

// ipAddr returns the IP address and port of a header's address, if it
// is one.
func ipAddr(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return ap, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}
