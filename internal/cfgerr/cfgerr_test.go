package cfgerr

import (
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"
)

func TestError(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"int", New("balancer", "Weight", 101, "out of range 0–100"), "balancer: Weight 101: out of range 0–100"},
		{"string", New("acl", "Entry", "10.0.0.0/33", "prefix length out of range"), `acl: Entry "10.0.0.0/33": prefix length out of range`},
		{"stringer", New("acl", "Addr", netip.MustParseAddr("::1"), "wrong family"), `acl: Addr "::1": wrong family`},
		{"duration", New("listener", "IdleTimeout", 5*time.Second, "out of range 10s–900s"), "listener: IdleTimeout 5s: out of range 10s–900s"},
		{"no field", New("sni", "", "a..b", "empty label"), `sni: "a..b": empty label`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	err := Wrap("tlspolicy", "Certificate", "cert.pem", "cannot read", io.ErrUnexpectedEOF)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("errors.Is(%v, io.ErrUnexpectedEOF) = false, want true", err)
	}
	var ce *Error
	if !errors.As(error(err), &ce) || ce.Field != "Certificate" {
		t.Errorf("errors.As did not recover the field: %+v", ce)
	}
}
