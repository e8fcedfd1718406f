package balancer

import (
	"fmt"
	"strings"
	"testing"
)

func seqString(seq []uint32) string {
	var b strings.Builder
	for _, i := range seq {
		b.WriteByte('a' + byte(i))
	}
	return b.String()
}

func TestSmoothSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string
	}{
		{"5:1:1 as nginx", []int{5, 1, 1}, "aabacaa"},
		{"equal", []int{100, 100, 100}, "abc"},
		{"gcd reduced", []int{20, 40}, "bab"},
		{"4:3:2:1", []int{4, 3, 2, 1}, "abcabdacba"},
		{"one", []int{7}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seqString(smoothSequence(tt.weights)); got != tt.want {
				t.Errorf("smoothSequence(%v) = %s, want %s", tt.weights, got, tt.want)
			}
		})
	}
}

// checkSmooth asserts that every member gets exactly its weight's share per
// cycle and that at every prefix its count is within slack of the ideal,
// which rules out bursts.
func checkSmooth(t *testing.T, weights []int, seq []uint32, slack float64) {
	t.Helper()
	g, total := 0, 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	for _, w := range weights {
		total += w / g
	}
	if len(seq) != total {
		t.Fatalf("cycle length %d, want %d", len(seq), total)
	}
	count := make([]int, len(weights))
	for step, i := range seq {
		count[i]++
		for j, w := range weights {
			ideal := float64(step+1) * float64(w/g) / float64(total)
			if d := float64(count[j]) - ideal; d > slack || d < -slack {
				t.Fatalf("after %d picks member %d (weight %d) has %d, ideal %.2f (±%.0f)", step+1, j, w, count[j], ideal, slack)
			}
		}
	}
	for j, w := range weights {
		if count[j] != w/g {
			t.Errorf("member %d (weight %d) picked %d times per cycle, want %d", j, w, count[j], w/g)
		}
	}
}

func TestSmoothness(t *testing.T) {
	// nginx's algorithm keeps every member within one pick of its ideal.
	for _, w := range [][]int{{5, 1, 1}, {1, 2, 3}, {100, 99, 1}, {37, 53, 71, 97, 2}} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			checkSmooth(t, w, smoothSequence(w), 1)
		})
	}
	// Large groups take the earliest-deadline path: each member's picks
	// stay within a pick of ideal too (ties can add one more).
	large := make([]int, 3000)
	for i := range large {
		large[i] = 1 + i%100
	}
	t.Run("3000 members, earliest deadline", func(t *testing.T) {
		seq := deadlineSequence(large, 1, func() int {
			s := 0
			for _, w := range large {
				s += w
			}
			return s
		}())
		checkSmooth(t, large, seq, 2)
	})
}
