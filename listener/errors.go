package listener

import (
	"errors"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ConfigError reports a refused configuration value: the field, the value
// and the reason with its bound. It is the same type in every lbkit
// package.
type ConfigError = cfgerr.Error

// ErrExists is wrapped by Instance.Add when a name or port is taken. Its
// text has no package prefix because it only ever appears inside an
// Instance.Add error that has one ("listener: Port 80: used by listener
// \"tcp_80\": already exists").
var ErrExists = errors.New("already exists")

func configErr(field string, value any, reason string) error {
	return cfgerr.New("listener", field, value, reason)
}

// An AddError is Instance.Apply's error for a listener of Change.Add it
// could not add: a refused Config, a name or port in use, a bandwidth cap
// beyond the instance's, a port it could not bind. Index is its place in
// Change.Add, Name its name, Err the cause (Instance.Add returns Err
// alone).
type AddError struct {
	Index int
	Name  string
	Err   error
}

func (e *AddError) Error() string { return e.Name + ": " + e.Err.Error() }

func (e *AddError) Unwrap() error { return e.Err }
