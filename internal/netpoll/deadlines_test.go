package netpoll

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The heap against a sorted list: random adds, removes and pops give the
// same slots in the same order.
func TestDeadlines(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var d deadlines
	want := map[int32]int64{} // slot → due, the reference
	next := int32(0)
	var free []int32
	now := int64(0)
	for step := range 20000 {
		switch op := rng.IntN(10); {
		case op < 5: // add
			slot := next
			if len(free) > 0 {
				slot, free = free[len(free)-1], free[:len(free)-1]
			} else {
				next++
			}
			due := now + rng.Int64N(50)
			d.add(slot, due)
			want[slot] = due
		case op < 7: // remove, sometimes a slot not scheduled
			slot := rng.Int32N(next + 2)
			d.remove(slot)
			if _, ok := want[slot]; ok {
				delete(want, slot)
				free = append(free, slot)
			}
		default: // advance and pop what is due
			now += rng.Int64N(10)
			for {
				slot, ok := d.popDue(now)
				if !ok {
					break
				}
				due, scheduled := want[slot]
				if !scheduled || due > now {
					t.Fatalf("step %d: popDue(%d) = slot %d (due %d, scheduled %v)", step, now, slot, due, scheduled)
				}
				if earliest := minDue(want); due != earliest {
					t.Fatalf("step %d: popDue(%d) = due %d, want the earliest %d", step, now, due, earliest)
				}
				delete(want, slot)
				free = append(free, slot)
			}
			if earliest := minDue(want); len(want) > 0 && earliest <= now {
				t.Fatalf("step %d: popDue(%d) left due %d", step, now, earliest)
			}
		}
		if got, ok := d.next(); ok != (len(want) > 0) || ok && got != minDue(want) {
			t.Fatalf("step %d: next() = %d, %v, want %d, %v", step, got, ok, minDue(want), len(want) > 0)
		}
	}
}

func minDue(m map[int32]int64) int64 {
	dues := make([]int64, 0, len(m))
	for _, due := range m {
		dues = append(dues, due)
	}
	if len(dues) == 0 {
		return 0
	}
	return slices.Min(dues)
}
