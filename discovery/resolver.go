package discovery

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/lbkit/lbkit/balancer"
)

// udpSize is the EDNS0 buffer size offered: the DNS flag day 2020 value,
// which avoids IP fragmentation on every common path. Larger answers come
// back truncated and are asked again over TCP.
const udpSize = 1232

// resolver asks one DNS server and turns its answers into backends.
type resolver struct {
	server string
	family string
	udp    *dns.Client
	tcp    *dns.Client
}

func newResolver(c DNSConfig) *resolver {
	return &resolver{
		server: c.Resolver,
		family: c.Family,
		udp:    &dns.Client{Net: "udp", Timeout: c.Timeout, UDPSize: udpSize},
		tcp:    &dns.Client{Net: "tcp", Timeout: c.Timeout},
	}
}

// answer is one lookup's outcome: the backends and the shortest TTL of
// the records they came from.
type answer struct {
	backends []balancer.Backend
	ttl      time.Duration
}

// exchange asks for name's records of type qtype, over UDP and again
// over TCP when the UDP answer was truncated (RFC 7766). NXDOMAIN is an
// empty answer; any other failure code is an error.
func (r *resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(udpSize, false)
	resp, _, err := r.udp.ExchangeContext(ctx, q, r.server)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, q, r.server)
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: %s %s from %s: %w", dns.TypeToString[qtype], name, r.server, err)
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("discovery: %s %s from %s: %s", dns.TypeToString[qtype], name, r.server, dns.RcodeToString[resp.Rcode])
	}
	return resp, nil
}

// qtypes are the address record types asked for, by family.
func (r *resolver) qtypes() []uint16 {
	switch r.family {
	case "ipv4":
		return []uint16{dns.TypeA}
	case "ipv6":
		return []uint16{dns.TypeAAAA}
	}
	return []uint16{dns.TypeA, dns.TypeAAAA}
}

// addrs returns name's addresses and the shortest TTL among them. known
// holds address records already received (an SRV answer's additional
// section): when it has some for name, no query is made.
func (r *resolver) addrs(ctx context.Context, name string, known []dns.RR) ([]netip.Addr, time.Duration, error) {
	var out []netip.Addr
	ttl := time.Duration(-1)
	take := func(rrs []dns.RR, owner string) {
		for _, rr := range rrs {
			a, ok := r.addrOf(rr, owner)
			if ok {
				out = append(out, a)
				ttl = minTTL(ttl, rr.Header().Ttl)
			}
		}
	}
	if take(known, name); len(out) > 0 {
		return out, ttl, nil
	}
	for _, qt := range r.qtypes() {
		resp, err := r.exchange(ctx, name, qt)
		if err != nil {
			return nil, 0, err
		}
		// The answer may begin with a CNAME chain: its address records
		// are the name's, whatever their owner.
		take(resp.Answer, "")
	}
	return out, ttl, nil
}

// addrOf reads the address of an A or AAAA record, of any owner when
// owner is "" and of owner otherwise, within the resolver's family.
func (r *resolver) addrOf(rr dns.RR, owner string) (netip.Addr, bool) {
	var ip []byte
	switch rr := rr.(type) {
	case *dns.A:
		if r.family != "ipv6" {
			ip = rr.A.To4()
		}
	case *dns.AAAA:
		if r.family != "ipv4" {
			ip = rr.AAAA.To16()
		}
	}
	if ip == nil || (owner != "" && !strings.EqualFold(owner, rr.Header().Name)) {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// lookupA returns a member for each address of name, on port.
func (r *resolver) lookupA(ctx context.Context, name string, port, weight int) (answer, error) {
	as, ttl, err := r.addrs(ctx, name, nil)
	if err != nil {
		return answer{}, err
	}
	var bs []balancer.Backend
	for _, a := range as {
		bs = append(bs, member(a, port, weight, false))
	}
	return answer{backends: bs, ttl: ttl}, nil
}

// lookupSRV returns a member for each address of each SRV target of name.
func (r *resolver) lookupSRV(ctx context.Context, name string) (answer, error) {
	resp, err := r.exchange(ctx, name, dns.TypeSRV)
	if err != nil {
		return answer{}, err
	}
	var srvs []*dns.SRV
	ttl := time.Duration(-1)
	for _, rr := range resp.Answer {
		if s, ok := rr.(*dns.SRV); ok && s.Target != "." { // "." : no service (RFC 2782)
			srvs = append(srvs, s)
			ttl = minTTL(ttl, s.Hdr.Ttl)
		}
	}
	if len(srvs) == 0 {
		return answer{ttl: ttl}, nil
	}
	primary := slices.MinFunc(srvs, func(a, b *dns.SRV) int { return cmp.Compare(a.Priority, b.Priority) }).Priority
	// Lowest priority first, so that an address two records share is the
	// member of the better tier.
	slices.SortStableFunc(srvs, func(a, b *dns.SRV) int { return cmp.Compare(a.Priority, b.Priority) })
	var bs []balancer.Backend
	seen := map[string]bool{}
	for _, s := range srvs {
		as, attl, err := r.addrs(ctx, s.Target, resp.Extra)
		if err != nil {
			return answer{}, err
		}
		if len(as) > 0 {
			ttl = minTTL(ttl, uint32(attl/time.Second))
		}
		for _, a := range as {
			b := member(a, int(s.Port), srvWeight(s.Weight, len(as)), s.Priority != primary)
			if !seen[b.ID] {
				seen[b.ID] = true
				bs = append(bs, b)
			}
		}
	}
	return answer{backends: bs, ttl: ttl}, nil
}

// srvWeight is the weight of each of a target's n addresses: the
// record's weight is the target's share (RFC 2782), split among its
// addresses. Weight 0 ("very small chance") is the smallest weight, 1.
func srvWeight(w uint16, n int) int {
	return max(1, int(w)/n)
}

// member is the backend for an address and port. Its ID is the address
// and port, so a member the next answer repeats keeps its identity, and
// with it its health, counters and sessions.
func member(a netip.Addr, port, weight int, standby bool) balancer.Backend {
	addr := netip.AddrPortFrom(a, uint16(port)).String()
	return balancer.Backend{ID: addr, Addr: addr, Weight: weight, Standby: standby}
}

// minTTL is the shorter of cur (negative: none yet) and a record's TTL.
func minTTL(cur time.Duration, ttl uint32) time.Duration {
	d := time.Duration(ttl) * time.Second
	if cur < 0 || d < cur {
		return d
	}
	return cur
}
