package session

import (
	"strconv"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ConfigError reports a refused configuration value: the field, the value
// as given and the reason, for example
//
//	session: CookieTimeout 1.5s: want positive whole seconds
//
// New, NewAffinity, SetKeys and SetBackends return it. Key material is never
// echoed: a refused key is reported by its length only.
type ConfigError = cfgerr.Error

func configErr(field string, value any, reason string) error {
	return cfgerr.New("session", field, value, reason)
}

// nilErr reports a missing value, shown bare: "Backends nil".
func nilErr(field, reason string) error {
	return &cfgerr.Error{Pkg: "session", Field: field, Value: "nil", Reason: reason}
}

// keyErr reports a refused key without revealing it.
func keyErr(field string, key []byte, reason string) error {
	return &cfgerr.Error{Pkg: "session", Field: field, Value: keyLenString(len(key)), Reason: reason}
}

func keyLenString(n int) string {
	return "<" + strconv.Itoa(n) + " bytes>"
}
