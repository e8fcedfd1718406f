package netpoll

// Ticket names one Park of one connection, for Unpark: the slot the
// poller keeps it in and that slot's generation, so a Ticket kept after
// its Park ended misses whatever parks in the slot later. The zero Ticket
// names none.
type Ticket uint64

func ticket(slot int32, gen uint32) Ticket { return Ticket(gen)<<32 | Ticket(uint32(slot)) }

func (t Ticket) slot() int32 { return int32(uint32(t)) }
func (t Ticket) gen() uint32 { return uint32(t >> 32) }
