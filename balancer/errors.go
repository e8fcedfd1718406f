package balancer

import (
	"errors"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ErrNoBackend is returned by a pick when the group has no member that may
// take new work: it is empty, or every member has weight 0 or is unhealthy
// (and Config.FailOpen is off).
var ErrNoBackend = errors.New("balancer: no backend available")

// ErrUnknownBackend is returned, wrapped with the ID, by methods given an
// ID that is not a member of the group.
var ErrUnknownBackend = errors.New("balancer: unknown backend")

// ConfigError reports a refused configuration value: the field, the value
// and the reason, with the bound where there is one. Every package of lbkit
// uses this same type, so one errors.As serves them all.
type ConfigError = cfgerr.Error

func configErr(field string, value any, reason string) error {
	return cfgerr.New("balancer", field, value, reason)
}
