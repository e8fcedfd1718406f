package balancer

import "strconv"

// State is a member's administrative state, HAProxy's ready, drain and
// maint: whether it takes new work, only the work it already has, or none.
// It is set by configuration (Backend.State) or at run time
// (Group.SetState) and is independent of health, which checks report.
//
// The zero value is Ready.
type State int

const (
	// Ready takes new work when healthy and in the tier taking traffic.
	Ready State = iota
	// Drain takes no new work; existing connections and sticky sessions
	// carry on, so a member can be taken out of rotation without cutting
	// its clients off.
	Drain
	// Maint takes no work at all: sticky sessions pick afresh, and health
	// checkers skip the member (read Member.State), so a backend under
	// maintenance is neither used nor probed.
	Maint
)

// String returns "ready", "drain" or "maint".
func (s State) String() string {
	switch s {
	case Ready:
		return "ready"
	case Drain:
		return "drain"
	case Maint:
		return "maint"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

func (s State) check() error {
	if s < Ready || s > Maint {
		return configErr("State", int(s), "unknown; want Ready, Drain or Maint")
	}
	return nil
}
