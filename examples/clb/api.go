package main

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/listener"
)

// control is the one gate to the running app's changes: reloads (SIGHUP,
// etcd, start, stop) and the runtime API's writes all take its lock. A
// mutex rather than a channel into the main loop: the API's handlers run
// on the admin server's goroutines and must wait for their answer
// anyway, and app's maps (running, plan) are then touched by one holder
// at a time whoever it is. Changes made through the API last until the
// next reload or restart, which apply the configuration again.
//
// control implements admin.Runtime.
type control struct {
	mu sync.Mutex
	a  *app
	// planOf plans a file as this replica runs it (-listen-address).
	planOf func(*File) (*plan, error)
	// fromEtcd refuses PUT /api/config: etcd would undo it.
	fromEtcd bool
}

// reload applies p, as app.reload, then starts the kept listeners the
// API stopped: a reload applies the configuration whole, and in it every
// listener runs.
func (c *control) reload(p *plan) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.a.reload(p)
	for _, r := range c.a.running {
		if r.l.State() == listener.Stopped {
			if serr := r.l.Start(); serr != nil && err == nil {
				err = fmt.Errorf("%w: %s: %w", errPartial, r.spec.label(), serr)
			}
		}
	}
	return err
}

// stop drains the app, as app.stop.
func (c *control) stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a.stop(ctx)
}

// groups returns the groups of listener name that hold backend id: the
// listener's own and its forwarding rules'.
func (c *control) groups(name, id string) ([]*balancer.Group, *balancer.Member, error) {
	r, ok := c.a.running[name]
	if !ok {
		return nil, nil, fmt.Errorf("%w: listener %q", admin.ErrNotFound, name)
	}
	var gs []*balancer.Group
	var first *balancer.Member
	for _, g := range append([]*balancer.Group{r.l.Group()}, r.rules...) {
		if m, ok := g.Member(id); ok {
			gs = append(gs, g)
			if first == nil {
				first = m
			}
		}
	}
	if len(gs) == 0 {
		return nil, nil, fmt.Errorf("%w: listener %s has no backend %q", admin.ErrNotFound, name, id)
	}
	return gs, first, nil
}

// clbWeightOf is a member's weight as the CLB writes it: 0 while it
// drains.
func clbWeightOf(m *balancer.Member) string {
	if m.State() == balancer.Drain {
		return "0"
	}
	return strconv.Itoa(m.Weight())
}

// SetWeight sets backend id's CLB weight in every group of the listener
// that holds it: 0 drains it, as in a configuration file; 1–100 sets
// the weight and returns a draining backend to ready (one in
// maintenance stays there).
func (c *control) SetWeight(name, id string, w int) (admin.Change, error) {
	if !weightRange.ok(w) {
		return admin.Change{}, fmt.Errorf("%w: Weight %d out of range %s", admin.ErrInvalid, w, weightRange)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, m, err := c.groups(name, id)
	if err != nil {
		return admin.Change{}, err
	}
	ch := admin.Change{What: fmt.Sprintf("listener %s backend %s weight", name, id), Before: clbWeightOf(m)}
	weight, state := weight(&w)
	for _, g := range gs {
		if state == balancer.Drain {
			err = g.SetState(id, balancer.Drain)
		} else if err = g.SetWeight(id, weight); err == nil && m.State() == balancer.Drain {
			err = g.SetState(id, balancer.Ready)
		}
		if err != nil { // the member was checked: only a bug gets here
			return admin.Change{}, err
		}
	}
	_, m, _ = c.groups(name, id)
	ch.After = clbWeightOf(m)
	return ch, nil
}

// SetState sets backend id's state in every group of the listener that
// holds it.
func (c *control) SetState(name, id string, st balancer.State) (admin.Change, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, m, err := c.groups(name, id)
	if err != nil {
		return admin.Change{}, err
	}
	ch := admin.Change{What: fmt.Sprintf("listener %s backend %s state", name, id), Before: m.State().String(), After: st.String()}
	for _, g := range gs {
		if err := g.SetState(id, st); err != nil {
			return admin.Change{}, err
		}
	}
	return ch, nil
}

// apiStopTimeout bounds how long a listener the API stops lets its
// connections finish before cutting them.
const apiStopTimeout = 30 * time.Second

// StopListener stops a listener gracefully.
func (c *control) StopListener(ctx context.Context, name string) (admin.Change, error) {
	return c.setRunning(name, func(l *listener.Listener) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiStopTimeout)
		defer cancel()
		l.Stop(ctx) // an error means connections were cut at the deadline: stopped all the same
		return nil
	})
}

// StartListener starts a stopped listener.
func (c *control) StartListener(name string) (admin.Change, error) {
	return c.setRunning(name, func(l *listener.Listener) error {
		if err := l.Start(); err != nil {
			return fmt.Errorf("%w: listener %s: %w", admin.ErrConflict, name, err)
		}
		return nil
	})
}

// setRunning stops or starts listener name by do.
func (c *control) setRunning(name string, do func(*listener.Listener) error) (admin.Change, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.a.running[name]
	if !ok {
		return admin.Change{}, fmt.Errorf("%w: listener %q", admin.ErrNotFound, name)
	}
	ch := admin.Change{What: "listener " + name, Before: r.l.State().String()}
	if err := do(r.l); err != nil {
		return admin.Change{}, err
	}
	ch.After = r.l.State().String()
	return ch, nil
}

// Config returns the configuration last applied (from the file, etcd or
// PUT /api/config) as YAML: the fields it gave, in the CLB's names.
// Runtime API changes are not in it; /status.json shows them.
func (c *control) Config() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return yaml.Marshal(encode(reflect.ValueOf(c.a.plan.file).Elem()))
}

// ReplaceConfig checks data as -check does and applies it as a reload
// does, all or nothing. The file on disk is not rewritten.
func (c *control) ReplaceConfig(data []byte) (admin.Change, error) {
	if c.fromEtcd {
		return admin.Change{}, fmt.Errorf("%w: the configuration comes from etcd: change it there", admin.ErrConflict)
	}
	c.mu.Lock()
	cur := c.a.plan.file
	c.mu.Unlock()
	f, err := Parse(cur.name, cur.dir, data)
	var p *plan
	if err == nil {
		p, err = c.planOf(f)
	}
	if err != nil {
		return admin.Change{}, fmt.Errorf("%w: configuration refused, the old one keeps running:\n%w", admin.ErrInvalid, err)
	}
	before := fmt.Sprintf("%d listeners", len(cur.Listeners))
	if err := c.reload(p); err != nil {
		return admin.Change{}, fmt.Errorf("%w: configuration refused, the old one keeps running: %w", admin.ErrConflict, err)
	}
	return admin.Change{What: "configuration", Before: before, After: fmt.Sprintf("%d listeners", len(p.listeners))}, nil
}

// encode renders a decoded configuration value as YAML: a struct's
// fields that its source gave (all non-zero ones if it was built in
// code, without a source), in declaration order, so that what Config
// returns parses back to the same configuration.
func encode(v reflect.Value) *yaml.Node {
	switch v.Kind() {
	case reflect.Pointer:
		return encode(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		var p pos
		if f := v.FieldByName("pos"); f.IsValid() {
			p = reflect.NewAt(posType, f.Addr().UnsafePointer()).Elem().Interface().(pos)
		}
		t := v.Type()
		for i := range t.NumField() {
			sf, fv := t.Field(i), v.Field(i)
			if !sf.IsExported() || sf.Type == posType {
				continue
			}
			if p.keys != nil && !p.given(sf.Name) || p.keys == nil && fv.IsZero() || fv.Kind() == reflect.Pointer && fv.IsNil() {
				continue
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: sf.Name}, encode(fv))
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range v.Len() {
			n.Content = append(n.Content, encode(v.Index(i)))
		}
		return n
	case reflect.Int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	default:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.String()}
	}
}
