package acl

import (
	"errors"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ConfigError reports a refused configuration value: a malformed entry, a
// bad group name, an entry or listener of the wrong family. Test for it with
// errors.As and read Field, Value and Reason.
type ConfigError = cfgerr.Error

// ErrFamily is the cause (reachable with errors.Is) of every ConfigError
// about an address family mismatch: an entry of the other family added to
// a group, or a group bound to a listener of the other family.
var ErrFamily = errors.New("acl: address family mismatch")

// ErrNotFound is the cause (reachable with errors.Is) of the ConfigError
// returned when [Group.Remove] is asked to remove a prefix the group does
// not hold.
var ErrNotFound = errors.New("acl: entry not in group")

// ErrDenied is returned by [Policy.Check] for a refused source. It is a
// fixed value, so returning it costs no allocation.
var ErrDenied = errors.New("acl: source denied")

const pkg = "acl"
