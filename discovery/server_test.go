package discovery

import (
	"os"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// zone is an in-process DNS server the test scripts: the records it
// serves, and the faults it shows (an error code, silence, truncation).
type zone struct {
	addr string

	mu       sync.Mutex
	records  map[string][]dns.RR // by "name type", e.g. "api.test. A"
	extra    []dns.RR            // additional section of every answer
	rcode    int                 // if not 0, every answer carries it
	silent   bool                // drop every query: the client times out
	truncate bool                // UDP answers are empty with TC set

	udp, tcp atomic.Int64 // queries received
}

// newZone starts a DNS server on loopback (UDP and TCP on one port),
// stopped when the test ends.
func newZone(t *testing.T) *zone {
	t.Helper()
	z := &zone{records: map[string][]dns.RR{}}
	var pc net.PacketConn
	var ln net.Listener
	for range 10 { // the UDP port may be taken for TCP: try another
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no loopback port free for both UDP and TCP")
	}
	z.addr = pc.LocalAddr().String()
	for _, s := range []*dns.Server{
		{PacketConn: pc, Handler: dns.HandlerFunc(z.serve)},
		{Listener: ln, Handler: dns.HandlerFunc(z.serve)},
	} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			_ = s.Shutdown()
			<-done
		})
	}
	return z
}

// set makes rrs (in zone-file syntax) the records of their owner and
// type, replacing what was there; set("api.test. A") with no records
// removes them.
func (z *zone) set(t *testing.T, key string, rrs ...string) {
	t.Helper()
	var parsed []dns.RR
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		parsed = append(parsed, rr)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.records[key] = parsed
}

func (z *zone) setExtra(t *testing.T, rrs ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	z.extra = nil
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		z.extra = append(z.extra, rr)
	}
}

func (z *zone) fault(rcode int, silent, truncate bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.rcode, z.silent, z.truncate = rcode, silent, truncate
}

func (z *zone) serve(w dns.ResponseWriter, q *dns.Msg) {
	isUDP := w.LocalAddr().Network() == "udp"
	if isUDP {
		z.udp.Add(1)
	} else {
		z.tcp.Add(1)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.silent {
		return
	}
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	switch {
	case z.rcode != 0:
		m.Rcode = z.rcode
	case z.truncate && isUDP:
		m.Truncated = true
	default:
		qq := q.Question[0]
		key := strings.ToLower(qq.Name) + " " + dns.TypeToString[qq.Qtype]
		m.Answer = append(m.Answer, z.records[key]...)
		if len(m.Answer) == 0 && !z.known(qq.Name) {
			m.Rcode = dns.RcodeNameError
		}
		m.Extra = append(m.Extra, z.extra...)
	}
	_ = w.WriteMsg(m)
}

// known reports whether name has records of any type. Called with z.mu
// held.
func (z *zone) known(name string) bool {
	for k, rrs := range z.records {
		if strings.HasPrefix(k, strings.ToLower(name)+" ") && len(rrs) > 0 {
			return true
		}
	}
	return false
}

func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
