package balancer

import "github.com/cespare/xxhash/v2"

// idIndex finds a member's position in a snapshot's members by ID in
// constant time, so that PickSticky stays flat in the group's size and a
// change of one member does not pay for a map of all of them: open
// addressing with linear probing over the members' cached ID hashes
// (Member.hid), at most half full. Slot values are positions plus one;
// zero is an empty slot, so a fresh table needs no filling. An index is
// immutable once built and is shared by every snapshot with the same IDs
// in the same order.
type idIndex []uint32

// newIDIndex indexes members, whose IDs are distinct.
func newIDIndex(members []*Member) idIndex {
	if len(members) == 0 {
		return nil
	}
	size := 8
	for size < 2*len(members) {
		size *= 2
	}
	x := make(idIndex, size)
	mask := uint64(size - 1)
	for pos, m := range members {
		i := m.hid & mask
		for x[i] != 0 {
			i = (i + 1) & mask
		}
		x[i] = uint32(pos + 1)
	}
	return x
}

// find returns the position of id in members, the slice x was built for,
// or -1.
func (x idIndex) find(members []*Member, id string) int {
	if len(x) == 0 {
		return -1
	}
	h := xxhash.Sum64String(id)
	mask := uint64(len(x) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		v := x[i]
		if v == 0 {
			return -1
		}
		if m := members[v-1]; m.hid == h && m.id == id {
			return int(v - 1)
		}
	}
}
