package errtest

import (
	"errors"
	"fmt"
	"testing"
)

// recorder counts the failures OnePrefix reports.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func TestOnePrefix(t *testing.T) {
	sentinel := errors.New("acl: address family mismatch")
	for _, tt := range []struct {
		name string
		err  error
		fail bool
	}{
		{"once", fmt.Errorf("acl: Entry %q: %s", "::/0", "wrong family"), false},
		{"doubled", fmt.Errorf("acl: Entry %q: %w", "::/0", sentinel), true},
		{"another package's", fmt.Errorf("listener: ACL: %w", sentinel), true},
		{"no prefix", errors.New("address family mismatch"), true},
		{"nil", nil, true},
	} {
		r := &recorder{TB: t}
		OnePrefix(r, "acl", map[string]error{tt.name: tt.err})
		if got := len(r.failures) > 0; got != tt.fail {
			t.Errorf("OnePrefix(%s: %v) failed = %v %q, want %v", tt.name, tt.err, got, r.failures, tt.fail)
		}
	}
}
