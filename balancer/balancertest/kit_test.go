package balancertest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sort"
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
		{"picks a stranger", func() balancer.Scheduler { return broken{kind: "stranger"} }, Options{}, "contract:", "members given to Build"},
		{"returns nil", func() balancer.Scheduler { return broken{kind: "nil"} }, Options{}, "contract:", "nil"},
		{"returns nil for one member", func() balancer.Scheduler { return broken{kind: "nil-single"} }, Options{}, "contract:", "= nil from a picker of 1 idle members"},
		{"sticks to the first of two, weights", func() balancer.Scheduler { return broken{kind: "first-of-two"} }, Options{}, "weights:", "weights [25 75]: member b00 got 100.00%"},
		// 1.5× the smallest member's weight gives it 7.3% where 5% is
		// due: inside an absolute reading of "± 5%", 46% off relative.
		{"tolerance is relative", func() balancer.Scheduler { return broken{kind: "skewed"} }, Options{}, "weights:", "weights [10 20 30 40 100]: member b00 got 7."},
		{"build panics, with its stack", func() balancer.Scheduler { return broken{kind: "build-panic"} }, Options{}, "contract:", "balancertest.broken.Build"},
		{"not consistent", func() balancer.Scheduler { return broken{kind: "even"} }, Options{IgnoresWeights: true, Consistent: true}, "consistent:", "moved"},
		{"modulo hash disrupts", func() balancer.Scheduler { return broken{kind: "modulo"} }, Options{IgnoresWeights: true, Consistent: true}, "consistent:", "removing 1 of 20"},
		{"hangs", func() balancer.Scheduler { return broken{kind: "hang"} }, Options{Timeout: 200 * time.Millisecond}, "contract:", "did not finish"},
		{"pick panics, with its stack", func() balancer.Scheduler { return broken{kind: "panic"} }, Options{}, "contract:", "(*brokenPicker).Pick"},
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
	if b.kind == "build-panic" {
		panic("broken build")
	}
	p := &brokenPicker{kind: b.kind, members: append([]*balancer.Member(nil), members...), stranger: strangers(members)}
	for i, m := range members {
		w := m.Weight()
		if i == 0 {
			w += w / 2
		}
		p.total += w
		p.cumulative = append(p.cumulative, p.total)
	}
	return p, nil
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
	// skewed: cumulative weights, the first member's 1.5× its own
	cumulative []int
	total      int
}

func (p *brokenPicker) Pick(k balancer.Key) *balancer.Member {
	switch p.kind {
	case "stranger":
		if p.calls.Add(1)%100 == 0 {
			return p.stranger
		}
	case "nil":
		return nil
	case "nil-single":
		if len(p.members) == 1 {
			return nil
		}
	case "first-of-two":
		if len(p.members) == 2 {
			return p.members[0]
		}
	case "skewed":
		return p.members[sort.SearchInts(p.cumulative, rand.IntN(p.total)+1)]
	case "modulo":
		return p.members[k.SourceIPHash()%uint64(len(p.members))]
	case "hang":
		select {}
	case "panic":
		panic("broken picker")
	}
	return p.members[p.n.Add(1)%uint64(len(p.members))]
}

// TestScheduler reports a failing check at the line that called it. The
// failing run happens in a child process, since it must fail.
func TestKitReportsAtCallerLine(t *testing.T) {
	if os.Getenv("BALANCERTEST_CHILD") == "1" {
		_, _, line, _ := runtime.Caller(0)
		fmt.Printf("TestScheduler called at line %d\n", line+2)
		TestScheduler(t, func() balancer.Scheduler { return broken{kind: "even"} }, Options{})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKitReportsAtCallerLine$", "-test.v")
	cmd.Env = append(os.Environ(), "BALANCERTEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the child passed a broken scheduler:\n%s", out)
	}
	var line int
	if _, err := fmt.Sscanf(string(out[bytes.Index(out, []byte("TestScheduler called at line")):]), "TestScheduler called at line %d", &line); err != nil {
		t.Fatalf("no call line in the child's output (%v):\n%s", err, out)
	}
	if want := fmt.Sprintf("kit_test.go:%d: weights:", line); !bytes.Contains(out, []byte(want)) {
		t.Errorf("the weights failure is not reported at the caller's line (want %q):\n%s", want, out)
	}
}
