package balancertest

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

func TestBuiltins(t *testing.T) {
	tests := []struct {
		name string
		new  func() balancer.Scheduler
		opts Options
	}{
		{"wrr", balancer.WeightedRoundRobin, Options{}},
		{"rr", balancer.RoundRobin, Options{IgnoresWeights: true}},
		{"wlc", balancer.LeastConnections, Options{}},
		{"sch", func() balancer.Scheduler { return balancer.Maglev{By: balancer.HashSourceIP} }, Options{Consistent: true}},
		{"tch", func() balancer.Scheduler { return balancer.Maglev{By: balancer.HashFourTuple} }, Options{Consistent: true}},
		{"qch", func() balancer.Scheduler { return balancer.Maglev{By: balancer.HashConnID} }, Options{Consistent: true}},
		{"sch/small-table", func() balancer.Scheduler { return balancer.Maglev{TableSize: 5003} }, Options{Consistent: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			TestScheduler(t, tt.new, tt.opts)
		})
	}
}

// The kit must fail schedulers that break their promises; each broken
// scheduler here must be caught by the named check.
func TestKitCatchesBrokenSchedulers(t *testing.T) {
	tests := []struct {
		name      string
		sched     func() balancer.Scheduler
		opts      Options
		wantCheck string
		wantText  string
	}{
		{"ignores weights", func() balancer.Scheduler { return broken{kind: "even"} }, Options{}, "weights:", "got"},
		{"picks a stranger", func() balancer.Scheduler { return broken{kind: "stranger"} }, Options{}, "contract:", "not one of the members"},
		{"returns nil", func() balancer.Scheduler { return broken{kind: "nil"} }, Options{}, "contract:", "nil"},
		{"not consistent", func() balancer.Scheduler { return broken{kind: "even"} }, Options{IgnoresWeights: true, Consistent: true}, "consistent:", "moved"},
		{"modulo hash disrupts", func() balancer.Scheduler { return broken{kind: "modulo"} }, Options{IgnoresWeights: true, Consistent: true}, "consistent:", "removing 1 of 20"},
		{"hangs", func() balancer.Scheduler { return broken{kind: "hang"} }, Options{Timeout: 200 * time.Millisecond}, "contract:", "did not finish"},
		{"panics", func() balancer.Scheduler { return broken{kind: "panic"} }, Options{}, "contract:", "panic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.sched, tt.opts)
			if err == nil {
				t.Fatalf("Check passed a broken scheduler (%s)", tt.name)
			}
			if !strings.Contains(err.Error(), tt.wantCheck) || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("Check error = %v\nwant a %q problem mentioning %q", err, tt.wantCheck, tt.wantText)
			}
		})
	}
}

type broken struct{ kind string }

func (b broken) Name() string { return "broken-" + b.kind }

func (b broken) Build(members []*balancer.Member) (balancer.Picker, error) {
	return &brokenPicker{kind: b.kind, members: append([]*balancer.Member(nil), members...), stranger: strangers(members)}, nil
}

// strangers builds a member from another group, to be returned wrongly.
func strangers(members []*balancer.Member) *balancer.Member {
	g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "stranger", Addr: "127.0.0.1:1", Weight: 100})
	m, _ := g.Member("stranger")
	return m
}

type brokenPicker struct {
	kind     string
	members  []*balancer.Member
	stranger *balancer.Member
	n        atomic.Uint64
	calls    atomic.Uint64
}

func (p *brokenPicker) Pick(k balancer.Key) *balancer.Member {
	switch p.kind {
	case "stranger":
		if p.calls.Add(1)%100 == 0 {
			return p.stranger
		}
	case "nil":
		return nil
	case "modulo":
		return p.members[k.SourceIPHash()%uint64(len(p.members))]
	case "hang":
		select {}
	case "panic":
		panic("broken picker")
	}
	return p.members[p.n.Add(1)%uint64(len(p.members))]
}
