package balancer

import (
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Weight bounds. Weights only matter relative to each other within a
// group; the bound keeps sums and products of weights well inside an int.
const (
	// DefaultWeight is the weight of a Backend whose Weight is zero, the
	// CLB's default.
	DefaultWeight = 100
	// MaxWeight is the largest weight, as in HAProxy and Envoy (whose
	// largest is higher, but 65535 already spans every useful ratio).
	MaxWeight = 65535
)

// maxIDLen bounds Backend.ID.
const maxIDLen = 256

// Backend describes one backend server as configured. Only Addr is
// required: the zero Weight is DefaultWeight and the zero State is Ready,
// so Backend{Addr: "10.0.0.1:80"} takes traffic.
type Backend struct {
	// ID names the backend uniquely within its group. Session cookies,
	// health reports and the Group methods refer to a member by ID, and
	// hash schedulers order members by it (see Maglev). If empty, Addr is
	// used. At most 256 bytes.
	ID string
	// Addr is the backend's address as host:port, port 1–65535. Several
	// backends may share an address if their IDs differ.
	Addr string
	// Weight is the share of new work the member receives relative to the
	// others. If zero, DefaultWeight (100) is used. Range 1–65535.
	// Draining is a State, not a weight.
	Weight int
	// State is Ready (the default), Drain (no new work; existing
	// connections and sticky sessions carry on) or Maint (no work at all,
	// and no health probes).
	State State
	// Standby puts the member in the standby tier of a primary/standby
	// group: it gets new work only while no primary member can take it.
	Standby bool
}

// normalize fills the ID and Weight defaults and validates b.
func (b Backend) normalize() (Backend, error) {
	if b.ID == "" {
		b.ID = b.Addr
	}
	if b.Weight == 0 {
		b.Weight = DefaultWeight
	}
	if len(b.ID) > maxIDLen {
		return b, configErr("ID", b.ID, "longer than 256 bytes")
	}
	if err := validateAddr(b.Addr); err != nil {
		return b, err
	}
	if err := checkWeight(b.Weight); err != nil {
		return b, err
	}
	if err := b.State.check(); err != nil {
		return b, err
	}
	return b, nil
}

// checkWeight is the one weight rule, shared by Backend (after its zero
// became DefaultWeight) and SetWeight, where a 0 is someone draining the
// old way.
func checkWeight(w int) error {
	if w == 0 {
		return configErr("Weight", w, "out of range 1–65535; use SetState(id, Drain) to drain")
	}
	if w < 1 || w > MaxWeight {
		return configErr("Weight", w, "out of range 1–65535")
	}
	return nil
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
// view of its configuration, state and health, plus live counters that
// outlive snapshots. Schedulers receive members in Build and return them
// from Pick; they read Weight, and Outstanding for load.
//
// The counters are fed by Group.Pick and Picked.Done; Begin and End are the
// lower-level calls those make, for callers that count work of their own.
//
// A *Member is safe for concurrent use. A change of the group gives the
// members it changes new *Member values and shares the others with the
// previous snapshot.
type Member struct {
	id      string
	hid     uint64 // xxhash of id: the ID index's and Maglev's
	addr    string
	weight  int
	state   State
	standby bool
	healthy bool
	sticky  bool // may keep existing sessions (see Group.PickSticky)
	stats   *stats

	// The health last reported (SetHealthy), if reported since the member
	// joined or left Maint. Picks never read these; only the group does,
	// under its mutex, which lets a report that picks would not notice be
	// recorded without a new snapshot.
	reported, reportedHealthy bool
}

// newMember returns the member for backend b, normalized, with counters
// st and no health reported.
func newMember(b Backend, st *stats) *Member {
	return &Member{id: b.ID, hid: xxhash.Sum64String(b.ID), addr: b.Addr, weight: b.Weight, state: b.State, standby: b.Standby, stats: st}
}

// health is the member's health as picks see it; unreported is that of a
// member nobody reported on (see Group.HealthChecked).
func (m *Member) health(unreported bool) bool {
	if m.reported {
		return m.reportedHealthy
	}
	return unreported
}

// stats are a backend's live counters, shared by every snapshot's Member
// for that backend and padded so that busy neighbours do not share a
// cache line.
type stats struct {
	outstanding atomic.Int64
	ended       atomic.Uint64 // Total is ended + outstanding: a pick pays one atomic add, not two
	failures    atomic.Uint64
	latency     atomic.Int64 // nanoseconds, of the last outcome that had one
	_           [32]byte
}

// ID returns the member's ID.
func (m *Member) ID() string { return m.id }

// Addr returns the member's host:port.
func (m *Member) Addr() string { return m.addr }

// Weight returns the member's weight, 1–65535.
func (m *Member) Weight() int { return m.weight }

// State returns the member's state: Ready, Drain or Maint. Health checkers
// skip members in Maint.
func (m *Member) State() State { return m.state }

// Standby reports whether the member is in the standby tier.
func (m *Member) Standby() bool { return m.standby }

// Healthy reports whether the member was healthy when this snapshot was
// taken.
func (m *Member) Healthy() bool { return m.healthy }

// Begin records that a connection or request to the member started:
// Outstanding and Total go up by one. Group.Pick calls it; call it
// yourself only for work you count without a pick, and pair it with End.
func (m *Member) Begin() { m.stats.outstanding.Add(1) }

// End records that work begun with Begin ended. Picked.Done calls it.
func (m *Member) End() {
	m.stats.outstanding.Add(-1)
	m.stats.ended.Add(1)
}

// Outstanding returns the number of connections or requests begun and not
// yet ended: picked and not yet Done. Least-connections and latency-aware
// schedulers balance on it.
func (m *Member) Outstanding() int64 { return m.stats.outstanding.Load() }

// Total returns the number of connections or requests ever begun. Read
// while work ends concurrently, it may be one low for an instant.
func (m *Member) Total() uint64 {
	return m.stats.ended.Load() + uint64(m.stats.outstanding.Load())
}

// Failures returns the number of outcomes reported with an error.
func (m *Member) Failures() uint64 { return m.stats.failures.Load() }

// LastLatency returns the latency of the last outcome reported with one
// (DoneInfo.Latency), or 0 if none was.
func (m *Member) LastLatency() time.Duration { return time.Duration(m.stats.latency.Load()) }
