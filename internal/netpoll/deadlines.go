package netpoll

// deadlines is a min-heap of parked slots by due tick: the poll loop
// sleeps until the earliest and pops every one that is due, and a slot
// that wakes or is taken back first leaves in O(log n). It replaces a
// timer per connection (a runtime timer is some 100 bytes and a heap
// operation of the runtime's own): here a parked connection costs one
// 16-byte item and a 4-byte index.
//
// The zero value is an empty heap. Not safe for concurrent use: the
// Poller's mutex guards it.
type deadlines struct {
	items []deadline // heap-ordered by due
	at    []int32    // at[slot] is the slot's index in items, or -1
}

type deadline struct {
	due  int64 // in ticks since the Poller's epoch
	slot int32
}

// add schedules slot (not already scheduled) for due.
func (d *deadlines) add(slot int32, due int64) {
	for int(slot) >= len(d.at) {
		d.at = append(d.at, -1)
	}
	d.items = append(d.items, deadline{due: due, slot: slot})
	d.up(len(d.items) - 1)
}

// remove unschedules slot; it is a no-op for a slot not scheduled.
func (d *deadlines) remove(slot int32) {
	if int(slot) >= len(d.at) || d.at[slot] < 0 {
		return
	}
	i := int(d.at[slot])
	last := len(d.items) - 1
	d.swap(i, last)
	d.items = d.items[:last]
	d.at[slot] = -1
	if i < last {
		d.down(i)
		d.up(i)
	}
}

// next returns the earliest due tick, if any slot is scheduled.
func (d *deadlines) next() (due int64, ok bool) {
	if len(d.items) == 0 {
		return 0, false
	}
	return d.items[0].due, true
}

// popDue removes and returns the earliest slot if it is due at tick now.
func (d *deadlines) popDue(now int64) (slot int32, ok bool) {
	if len(d.items) == 0 || d.items[0].due > now {
		return -1, false
	}
	slot = d.items[0].slot
	d.remove(slot)
	return slot, true
}

func (d *deadlines) swap(i, j int) {
	d.items[i], d.items[j] = d.items[j], d.items[i]
	d.at[d.items[i].slot] = int32(i)
	d.at[d.items[j].slot] = int32(j)
}

func (d *deadlines) up(i int) {
	d.at[d.items[i].slot] = int32(i)
	for i > 0 {
		parent := (i - 1) / 2
		if d.items[parent].due <= d.items[i].due {
			return
		}
		d.swap(i, parent)
		i = parent
	}
}

func (d *deadlines) down(i int) {
	for {
		least := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(d.items) && d.items[c].due < d.items[least].due {
				least = c
			}
		}
		if least == i {
			return
		}
		d.swap(i, least)
		i = least
	}
}
