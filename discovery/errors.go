package discovery

import (
	"errors"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ConfigError reports a refused configuration value: the field, the value
// and the reason. Every package of lbkit uses this same type, so one
// errors.As serves them all.
type ConfigError = cfgerr.Error

func configErr(field string, value any, reason string) error {
	return cfgerr.New("discovery", field, value, reason)
}

func wrapErr(field string, value any, reason string, err error) error {
	return cfgerr.Wrap("discovery", field, value, reason, err)
}

// ErrNoRecords is the outcome of a lookup whose answer holds no usable
// address: the name does not exist, has no records of the type, or its
// SRV targets have no addresses. The source keeps its last good set.
var ErrNoRecords = errors.New("discovery: no records")

// ErrStopped is returned by Start once the source has been stopped.
var ErrStopped = errors.New("discovery: source stopped")
