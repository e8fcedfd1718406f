//go:build !linux

package netpoll

import (
	"errors"
	"testing"
)

func TestNewUnsupported(t *testing.T) {
	if p, err := New(); p != nil || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("New() = %v, %v, want nil and an error wrapping errors.ErrUnsupported", p, err)
	}
}
