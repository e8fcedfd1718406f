package bench

import (
	"slices"
	"testing"
)

// The tests run the measurements on a small population so that go test
// stays fast; cmd/balance runs them at full size for the README.

func TestBalance(t *testing.T) {
	ks := NewKeys(20_000, 1)
	for _, h := range Hashes {
		t.Run(h.Name, func(t *testing.T) {
			r, err := Balance(h, 10, ks, 2)
			if err != nil {
				t.Fatal(err)
			}
			if r.Imbalance < 1 || r.MovedMean <= 0 || r.MovedMax < r.MovedMean || r.Extra < 0 {
				t.Errorf("Balance = %+v, want imbalance ≥ 1 and some keys moved", r)
			}
		})
	}
}

func TestMaglevBalance(t *testing.T) {
	ks := NewKeys(100_000, 1)
	r, err := Balance(Hashes[0], 10, ks, 1)
	if err != nil {
		t.Fatal(err)
	}
	// 10,000 keys a node: the binomial spread alone is about 1%.
	if r.Imbalance > 1.1 {
		t.Errorf("Maglev imbalance = %.3f, want ≤ 1.1", r.Imbalance)
	}
	if r.MovedMean > 0.2 {
		t.Errorf("Maglev moved %.3f of keys removing 1 of 10, want ≤ 0.2", r.MovedMean)
	}
}

func TestSmoothness(t *testing.T) {
	weights := []int{3, 2, 1}
	tests := []struct {
		name    string
		wrr     WRR
		maxDisc float64
		maxRun  int
		wantSeq []int // nil: any order
	}{
		// Caddy's counter starts at 0 and is incremented before use.
		{"caddy", WRRs[1], 2, 3, []int{0, 0, 1, 1, 2, 0, 0, 0, 1, 1, 2, 0}},
		{"lbkit", WRRs[0], 1.5, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, err := Sequence(tt.wrr, weights, 60)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantSeq != nil && !slices.Equal(seq[:len(tt.wantSeq)], tt.wantSeq) {
				t.Errorf("Sequence = %s, want %s", Letters(seq[:len(tt.wantSeq)]), Letters(tt.wantSeq))
			}
			counts := make([]int, len(weights))
			for _, i := range seq {
				counts[i]++
			}
			if !slices.Equal(counts, []int{30, 20, 10}) {
				t.Errorf("60 picks gave %v, want [30 20 10]", counts)
			}
			if d := Discrepancy(seq, weights, 6); d < 0 || d > tt.maxDisc {
				t.Errorf("Discrepancy = %.2f, want 0–%.2f", d, tt.maxDisc)
			}
			if r := LongestRun(seq); r != tt.maxRun {
				t.Errorf("LongestRun = %d, want %d", r, tt.maxRun)
			}
		})
	}
}

func TestDiscrepancy(t *testing.T) {
	tests := []struct {
		name string
		seq  []int
		want float64
	}{
		{"alternating", []int{0, 1, 0, 1}, 0.5},
		{"burst", []int{0, 0, 1, 1, 0, 0, 1, 1}, 1},
		{"too short", []int{0, 1, 0}, -1},
		{"invalid pick", []int{0, -1, 0, 1}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Discrepancy(tt.seq, []int{1, 1}, 2); got != tt.want {
				t.Errorf("Discrepancy(%v) = %v, want %v", tt.seq, got, tt.want)
			}
		})
	}
}

func TestLongestRun(t *testing.T) {
	if got := LongestRun([]int{0, 0, 1, 1, 1, 2, 0}); got != 3 {
		t.Errorf("LongestRun = %d, want 3", got)
	}
}
