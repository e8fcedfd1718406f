package balancer

import (
	"net"
	"strconv"
	"sync/atomic"
)

// Weight bounds. The CLB's default weight is DefaultWeight; there is no
// implicit default in Backend, because weight 0 is meaningful (drain).
const (
	MinWeight     = 0
	MaxWeight     = 100
	DefaultWeight = 100
)

// maxIDLen bounds Backend.ID.
const maxIDLen = 256

// Backend describes one backend server as configured.
//
// Weight has no implicit default: the zero value 0 means "drain" (no new
// connections; existing ones and sticky sessions carry on), so set it
// explicitly, usually to DefaultWeight.
type Backend struct {
	// ID names the backend uniquely within its group. Session cookies,
	// health reports and the Group methods refer to a member by ID, and
	// hash schedulers order members by it (see Maglev). If empty, Addr is
	// used. At most 256 bytes.
	ID string
	// Addr is the backend's address as host:port, port 1–65535. Several
	// backends may share an address if their IDs differ.
	Addr string
	// Weight is 0–100. A member receives new work in proportion to its
	// weight; weight 0 drains it.
	Weight int
	// Standby puts the member in the standby tier of a primary/standby
	// group: it gets new work only while no primary member can take it.
	Standby bool
}

// normalize fills the ID default and validates b.
func (b Backend) normalize() (Backend, error) {
	if b.ID == "" {
		b.ID = b.Addr
	}
	if len(b.ID) > maxIDLen {
		return b, configErr("ID", b.ID, "longer than 256 bytes")
	}
	if err := validateAddr(b.Addr); err != nil {
		return b, err
	}
	if b.Weight < MinWeight || b.Weight > MaxWeight {
		return b, configErr("Weight", b.Weight, "out of range 0–100")
	}
	return b, nil
}

func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return configErr("Addr", addr, "not host:port")
	}
	if host == "" {
		return configErr("Addr", addr, "empty host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p < 1 {
		return configErr("Addr", addr, "port out of range 1–65535")
	}
	return nil
}

// Member is one backend as a snapshot of its group sees it: an immutable
// view of its configuration and health, plus live counters that outlive
// snapshots. Schedulers receive members in Build and return them from Pick.
//
// A *Member is safe for concurrent use. Callers that track connections call
// Begin when they start using a picked member and End when they finish;
// least-connections scheduling and the counters read those calls.
type Member struct {
	id      string
	addr    string
	weight  int
	standby bool
	healthy bool
	sticky  bool // may keep existing sessions (see Group.PickSticky)
	stats   *stats
}

// stats are a backend's live counters, shared by every snapshot's Member
// for that backend and padded so that busy neighbours do not share a
// cache line.
type stats struct {
	active atomic.Int64
	total  atomic.Uint64
	_      [48]byte
}

// ID returns the member's ID.
func (m *Member) ID() string { return m.id }

// Addr returns the member's host:port.
func (m *Member) Addr() string { return m.addr }

// Weight returns the member's weight, 0–100.
func (m *Member) Weight() int { return m.weight }

// Standby reports whether the member is in the standby tier.
func (m *Member) Standby() bool { return m.standby }

// Healthy reports whether the member was healthy when this snapshot was
// taken.
func (m *Member) Healthy() bool { return m.healthy }

// Begin records that a connection or request to the member started.
func (m *Member) Begin() {
	m.stats.active.Add(1)
	m.stats.total.Add(1)
}

// End records that a connection or request begun with Begin ended.
func (m *Member) End() { m.stats.active.Add(-1) }

// Active returns the number of connections begun and not yet ended.
func (m *Member) Active() int64 { return m.stats.active.Load() }

// Total returns the number of connections ever begun.
func (m *Member) Total() uint64 { return m.stats.total.Load() }
