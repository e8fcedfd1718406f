// Package errtest checks, in tests, that an lbkit error reads as the
// package's errors must: prefixed once with the name of the package that
// returns it ("acl: …"), and with no second package prefix inside, which
// is what wrapping one of a package's own errors in another would print
// ("acl: Entry …: acl: address family mismatch").
package errtest

import (
	"strings"
	"testing"
)

// prefixes are the packages whose error prefixes must not appear twice.
var prefixes = []string{"acl", "balancer", "health", "listener", "quiclb", "session", "sni", "tlspolicy"}

// OnePrefix reports an error on t for each of errs (named by its key) that
// is nil, does not start with pkg + ": ", or carries an lbkit package
// prefix a second time.
func OnePrefix(t testing.TB, pkg string, errs map[string]error) {
	t.Helper()
	for name, err := range errs {
		if err == nil {
			t.Errorf("%s: error = nil, want one", name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, pkg+": ") {
			t.Errorf("%s: %q does not start with %q", name, msg, pkg+": ")
		}
		for _, p := range prefixes {
			if n := strings.Count(msg, p+": "); n > 1 || (n == 1 && p != pkg) {
				t.Errorf("%s: %q carries %q %d times", name, msg, p+": ", n)
			}
		}
	}
}

// Err returns the error of a two-result call, so a table of errors can
// list constructor calls directly: Err(acl.ParseEntry("")).
func Err[T any](_ T, err error) error { return err }
