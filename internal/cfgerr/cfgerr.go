// Package cfgerr holds the one error type every lbkit package uses for a
// refused configuration value. Public packages re-export it under their own
// name (balancer.ConfigError, acl.ConfigError, …) as a type alias, so a
// caller can test any of them with errors.As and read Field, Value and
// Reason.
package cfgerr

import (
	"errors"
	"fmt"
	"time"
)

// Error reports a configuration value that was refused: which field, the
// value as given, and why. Err, if set, is the underlying cause and is
// returned by Unwrap.
type Error struct {
	Pkg    string // package that refused it, e.g. "balancer"
	Field  string // field or argument name, e.g. "Weight"
	Value  string // the offending value, formatted
	Reason string // why, with the bound where there is one: "out of range 0–100"
	Err    error  // optional cause
}

// New returns an *Error. Numbers and durations appear bare in the
// message ("Weight 101", "IdleTimeout 5s"); strings and other values with
// a String method are quoted ("10.0.0.0/33").
func New(pkg, field string, value any, reason string) *Error {
	return &Error{Pkg: pkg, Field: field, Value: format(value), Reason: reason}
}

// Wrap is New with an underlying cause, which Unwrap returns.
func Wrap(pkg, field string, value any, reason string, err error) *Error {
	e := New(pkg, field, value, reason)
	e.Err = err
	return e
}

func format(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case time.Duration:
		return v.String()
	case fmt.Stringer:
		return fmt.Sprintf("%q", v.String())
	default:
		return fmt.Sprint(v)
	}
}

// Error formats as "pkg: Field value: reason".
func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s: %s", e.Pkg, e.Value, e.Reason)
	}
	return fmt.Sprintf("%s: %s %s: %s", e.Pkg, e.Field, e.Value, e.Reason)
}

// Reason is why err refused a value, without its package prefix, field
// and value, for an error of another package that names them itself
// (one prefix per message); err's whole text if it is not an *Error.
func Reason(err error) string {
	if ce, ok := errors.AsType[*Error](err); ok {
		return ce.Reason
	}
	return err.Error()
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.Err }
