package balancer

import (
	"errors"
	"strings"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ErrNoBackend is returned by a pick when the group has no member that may
// take new work: it is empty, or every member is drained, in maintenance or
// unhealthy (and Config.FailOpen is off).
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

// wrap adds context to one of the package's errors while keeping the
// "balancer: " prefix once: wrap(`backend "zz"`, ErrUnknownBackend) reads
// `balancer: backend "zz": unknown backend` and still satisfies errors.Is.
func wrap(context string, err error) error {
	return &wrapped{msg: prefix + context + ": " + strings.TrimPrefix(err.Error(), prefix), err: err}
}

const prefix = "balancer: "

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }
