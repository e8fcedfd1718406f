package listener

import (
	"errors"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ConfigError reports a refused configuration value: the field, the value
// and the reason with its bound. It is the same type in every lbkit
// package.
type ConfigError = cfgerr.Error

// ErrExists is wrapped by Instance.Add when a name or port is taken.
var ErrExists = errors.New("listener: already exists")

func configErr(field string, value any, reason string) error {
	return cfgerr.New("listener", field, value, reason)
}
