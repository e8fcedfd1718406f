package bench

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/serialx/hashring"
	"github.com/stathat/consistent"

	"github.com/lbkit/lbkit/balancer"
)

// Keys is a population of client addresses in the form each contender
// takes it: a string for the rings, a RemoteAddr for Caddy, a Key for us.
// Key i is the same client in every form.
type Keys struct {
	IPs    []string       // "a.b.c.d"
	Remote []string       // "a.b.c.d:port", as http.Request.RemoteAddr
	Keys   []balancer.Key // Src = the same address and port
}

// NewKeys returns n random IPv4 client addresses drawn from a PCG seeded
// with seed, so every run measures the same population.
func NewKeys(n int, seed uint64) *Keys {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	ks := &Keys{IPs: make([]string, n), Remote: make([]string, n), Keys: make([]balancer.Key, n)}
	for i := range n {
		v := r.Uint32()
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		ap := netip.AddrPortFrom(a, uint16(1024+r.IntN(60000)))
		ks.IPs[i] = a.String()
		ks.Remote[i] = ap.String()
		ks.Keys[i] = balancer.Key{Src: ap, Dst: netip.MustParseAddrPort("192.0.2.1:443")}
	}
	return ks
}

// NodeNames returns n backend addresses, "10.0.0.1:80" onwards. They are
// the ring members, Caddy's Dial addresses and our backends' IDs.
func NodeNames(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1)
	}
	return s
}

// A Placer maps key i of its Keys to the name of a node.
type Placer interface {
	Place(i int) string
}

// A Hash is a consistent-hash implementation under test.
type Hash struct {
	Name string
	// New returns a placer of keys over nodes, all of equal weight.
	New func(nodes []string, keys *Keys) (Placer, error)
}

// Hashes are the contenders for the source-IP hash job: ours and the
// peers, each configured the way its documentation suggests.
var Hashes = []Hash{
	{"lbkit sch (Maglev, M=65537)", newMaglev},
	{"stathat/consistent (20 replicas)", newStathat},
	{"serialx/hashring New (1 point/node)", func(nodes []string, ks *Keys) (Placer, error) {
		return &hashringPlacer{hashring.New(nodes), ks}, nil
	}},
	{"serialx/hashring weight 100 (100 points/node)", func(nodes []string, ks *Keys) (Placer, error) {
		w := make(map[string]int, len(nodes))
		for _, n := range nodes {
			w[n] = 100
		}
		return &hashringPlacer{hashring.NewWithWeights(w), ks}, nil
	}},
	{"caddy ip_hash (rendezvous)", newCaddyIPHash},
}

type maglevPlacer struct {
	g  *balancer.Group
	ks *Keys
}

func newMaglev(nodes []string, ks *Keys) (Placer, error) {
	bs := make([]balancer.Backend, len(nodes))
	for i, n := range nodes {
		bs[i] = balancer.Backend{Addr: n, Weight: balancer.MaxWeight}
	}
	g, err := balancer.New(balancer.Config{Scheduler: balancer.Maglev{By: balancer.HashSourceIP}}, bs...)
	if err != nil {
		return nil, err
	}
	return &maglevPlacer{g, ks}, nil
}

func (p *maglevPlacer) Place(i int) string {
	picked, err := p.g.Pick(p.ks.Keys[i])
	if err != nil {
		return ""
	}
	picked.Done(balancer.DoneInfo{})
	return picked.Member.ID()
}

type stathatPlacer struct {
	c  *consistent.Consistent
	ks *Keys
}

func newStathat(nodes []string, ks *Keys) (Placer, error) {
	c := consistent.New()
	c.Set(nodes)
	return &stathatPlacer{c, ks}, nil
}

func (p *stathatPlacer) Place(i int) string {
	s, err := p.c.Get(p.ks.IPs[i])
	if err != nil {
		return ""
	}
	return s
}

type hashringPlacer struct {
	r  *hashring.HashRing
	ks *Keys
}

func (p *hashringPlacer) Place(i int) string {
	s, _ := p.r.GetNode(p.ks.IPs[i])
	return s
}

type caddyPlacer struct {
	pool reverseproxy.UpstreamPool
	req  *http.Request
	ks   *Keys
}

func newCaddyIPHash(nodes []string, ks *Keys) (Placer, error) {
	req, err := http.NewRequest(http.MethodGet, "http://example.com/", nil)
	if err != nil {
		return nil, err
	}
	return &caddyPlacer{CaddyPool(nodes), req, ks}, nil
}

func (p *caddyPlacer) Place(i int) string {
	p.req.RemoteAddr = p.ks.Remote[i]
	u := reverseproxy.IPHashSelection{}.Select(p.pool, p.req, nil)
	if u == nil {
		return ""
	}
	return u.Dial
}

// CaddyPool returns healthy upstreams dialing nodes, set up as Caddy's own
// selection-policy tests do: each with a fresh Host.
func CaddyPool(nodes []string) reverseproxy.UpstreamPool {
	pool := make(reverseproxy.UpstreamPool, len(nodes))
	for i, n := range nodes {
		pool[i] = &reverseproxy.Upstream{Host: new(reverseproxy.Host), Dial: n}
	}
	return pool
}

// BalanceResult is how one hash spread keys over nodes and how many moved
// when a node left.
type BalanceResult struct {
	Nodes int
	// Imbalance is the busiest node's key count over the mean (1 is
	// perfect).
	Imbalance float64
	// MovedMean and MovedMax are the mean and largest fraction of all
	// keys that changed node when one node was removed, over the
	// removals tried. The ideal is 1/Nodes.
	MovedMean, MovedMax float64
	// Extra is the mean fraction of keys that moved although their node
	// stayed (0 is ideal: only the removed node's keys should move).
	Extra float64
}

// Balance places every key of ks over n nodes with h, then removes each
// of the first removals nodes in turn and counts the keys that moved.
func Balance(h Hash, n int, ks *Keys, removals int) (BalanceResult, error) {
	nodes := NodeNames(n)
	p, err := h.New(nodes, ks)
	if err != nil {
		return BalanceResult{}, err
	}
	keys := len(ks.IPs)
	before := make([]string, keys)
	count := make(map[string]int, n)
	for i := range keys {
		before[i] = p.Place(i)
		count[before[i]]++
	}
	peak := 0
	for _, c := range count {
		peak = max(peak, c)
	}
	res := BalanceResult{Nodes: n, Imbalance: float64(peak) * float64(n) / float64(keys)}
	removals = min(removals, n)
	for r := range removals {
		rest := append(append([]string(nil), nodes[:r]...), nodes[r+1:]...)
		q, err := h.New(rest, ks)
		if err != nil {
			return res, err
		}
		moved, extra := 0, 0
		for i := range keys {
			if q.Place(i) != before[i] {
				moved++
				if before[i] != nodes[r] {
					extra++
				}
			}
		}
		f := float64(moved) / float64(keys)
		res.MovedMean += f / float64(removals)
		res.MovedMax = max(res.MovedMax, f)
		res.Extra += float64(extra) / float64(keys) / float64(removals)
	}
	return res, nil
}

// A WRR is a weighted round robin under test.
type WRR struct {
	Name string
	// New returns a function giving the index of each next pick among
	// backends of the given weights.
	New func(weights []int) (func() int, error)
}

// WRRs are ours and Caddy's weighted round robin.
var WRRs = []WRR{
	{"lbkit wrr", newOurWRR},
	{"caddy weighted_round_robin", newCaddyWRR},
}

func newOurWRR(weights []int) (func() int, error) {
	nodes := NodeNames(len(weights))
	bs := make([]balancer.Backend, len(weights))
	index := make(map[string]int, len(weights))
	for i, w := range weights {
		bs[i] = balancer.Backend{Addr: nodes[i], Weight: w}
		index[nodes[i]] = i
	}
	g, err := balancer.New(balancer.Config{Scheduler: balancer.WeightedRoundRobin()}, bs...)
	if err != nil {
		return nil, err
	}
	return func() int {
		p, err := g.Pick(balancer.Key{})
		if err != nil {
			return -1
		}
		p.Done(balancer.DoneInfo{})
		return index[p.Member.ID()]
	}, nil
}

func newCaddyWRR(weights []int) (func() int, error) {
	pool := CaddyPool(NodeNames(len(weights)))
	index := make(map[*reverseproxy.Upstream]int, len(pool))
	for i, u := range pool {
		index[u] = i
	}
	s, err := CaddyWRR(weights)
	if err != nil {
		return nil, err
	}
	return func() int {
		u := s.Select(pool, nil, nil)
		if u == nil {
			return -1
		}
		return index[u]
	}, nil
}

// CaddyWRR returns Caddy's weighted round robin, provisioned and validated
// as Caddy does when it loads the config (Provision computes the total
// weight that Select divides by).
func CaddyWRR(weights []int) (*reverseproxy.WeightedRoundRobinSelection, error) {
	s := &reverseproxy.WeightedRoundRobinSelection{Weights: weights}
	if err := s.Provision(caddy.Context{}); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Sequence returns the first n picks of w over weights.
func Sequence(w WRR, weights []int, n int) ([]int, error) {
	next, err := w.New(weights)
	if err != nil {
		return nil, err
	}
	seq := make([]int, n)
	for i := range seq {
		seq[i] = next()
	}
	return seq, nil
}

// Discrepancy returns the largest distance, over every window of
// consecutive picks in seq and every backend, between the picks the
// backend got in the window and its fair share L·w/Σw for a window of
// length L. Windows start anywhere in the first period picks and are at
// most period long, so seq must hold at least two periods; a schedule
// that repeats every period then scores the same from any starting
// point. Smooth weighted round robin keeps it below 2; a schedule that
// sends each backend its share in one burst scores near the largest
// weight. It returns -1 if seq is too short or holds an invalid pick.
func Discrepancy(seq []int, weights []int, period int) float64 {
	if len(seq) < 2*period {
		return -1
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	n := len(weights)
	// prefix[t*n+i] = picks of backend i among seq[:t]
	prefix := make([]int, (2*period+1)*n)
	for t := range 2 * period {
		copy(prefix[(t+1)*n:(t+2)*n], prefix[t*n:(t+1)*n])
		i := seq[t]
		if i < 0 || i >= n {
			return -1
		}
		prefix[(t+1)*n+i]++
	}
	worst := 0.0
	for s := range period {
		for l := 1; l <= period; l++ {
			for i, w := range weights {
				d := float64(prefix[(s+l)*n+i]-prefix[s*n+i]) - float64(l*w)/float64(total)
				worst = max(worst, d, -d)
			}
		}
	}
	return worst
}

// LongestRun returns the most consecutive picks of one backend in seq.
func LongestRun(seq []int) int {
	best, run := 0, 0
	for t, v := range seq {
		if t > 0 && v == seq[t-1] {
			run++
		} else {
			run = 1
		}
		best = max(best, run)
	}
	return best
}

// Letters renders picks as A, B, C, … for the README.
func Letters(seq []int) string {
	b := make([]byte, 0, 2*len(seq))
	for i, v := range seq {
		if i > 0 {
			b = append(b, ' ')
		}
		if v < 0 || v >= 26 {
			b = strconv.AppendInt(append(b, '#'), int64(v), 10)
			continue
		}
		b = append(b, byte('A'+v))
	}
	return string(b)
}
