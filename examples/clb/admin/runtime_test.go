package admin_test

import (
	"context"
	"fmt"
	"strconv"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/listener"
)

// groupRuntime is an admin.Runtime over a fixture's instance: it changes
// the listeners' groups and states directly, as clb's does through its
// plan.
type groupRuntime struct{ inst *listener.Instance }

func (g groupRuntime) listener(name string) (*listener.Listener, error) {
	l, ok := g.inst.Listener(name)
	if !ok {
		return nil, fmt.Errorf("%w: listener %q", admin.ErrNotFound, name)
	}
	return l, nil
}

func (g groupRuntime) SetWeight(ln, backend string, weight int, _ bool) (admin.Change, error) {
	l, err := g.listener(ln)
	if err != nil {
		return admin.Change{}, err
	}
	if err := l.Group().SetWeight(backend, weight); err != nil {
		return admin.Change{}, fmt.Errorf("%w: %w", admin.ErrInvalid, err)
	}
	return admin.Change{What: ln + " " + backend + " weight", After: strconv.Itoa(weight)}, nil
}

func (g groupRuntime) SetState(ln, backend string, st balancer.State, _ bool) (admin.Change, error) {
	l, err := g.listener(ln)
	if err != nil {
		return admin.Change{}, err
	}
	if err := l.Group().SetState(backend, st); err != nil {
		return admin.Change{}, fmt.Errorf("%w: %w", admin.ErrNotFound, err)
	}
	return admin.Change{What: ln + " " + backend + " state", After: st.String()}, nil
}

func (g groupRuntime) StopListener(ctx context.Context, ln string) (admin.Change, error) {
	l, err := g.listener(ln)
	if err != nil {
		return admin.Change{}, err
	}
	return admin.Change{What: ln, After: "stopped"}, l.Stop(ctx)
}

func (g groupRuntime) StartListener(ln string) (admin.Change, error) {
	l, err := g.listener(ln)
	if err != nil {
		return admin.Change{}, err
	}
	return admin.Change{What: ln, After: "running"}, l.Start()
}

func (g groupRuntime) Config() ([]byte, error) { return []byte("Listeners: []\n"), nil }

func (g groupRuntime) ReplaceConfig([]byte, bool) (admin.Change, error) {
	return admin.Change{}, fmt.Errorf("%w: not in this test", admin.ErrConflict)
}
