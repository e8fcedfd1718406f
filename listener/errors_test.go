package listener

import (
	"errors"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// ErrExists appears inside Add's own prefixed message, so the message
// carries the package prefix once.
func TestErrExistsMessage(t *testing.T) {
	in, err := NewInstance(InstanceConfig{ID: "lb-t"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { in.Stop(within(t, 10*time.Second)) }()
	g, err := balancer.New(balancer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Add(Config{Protocol: TCP, Port: 80, Stopped: true, Group: g}); err != nil {
		t.Fatal(err)
	}
	_, err = in.Add(Config{Protocol: TCP, Port: 81, Name: "tcp_80", Stopped: true, Group: g})
	if want := `listener: Name "tcp_80": already exists`; err == nil || err.Error() != want || !errors.Is(err, ErrExists) {
		t.Errorf("Add = %v, want %q wrapping ErrExists", err, want)
	}
}
