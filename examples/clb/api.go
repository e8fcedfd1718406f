package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
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
// at a time whoever it is.
//
// Where a change lasts: with a configuration from etcd, weight, drain and
// configuration changes are written through to etcd (persist.go), and
// every replica, this one included, applies them from its watch, so the
// fleet agrees; maintenance, which has no field in the configuration,
// and stopped listeners stay this replica's until its next reload. With
// a file, changes last until the next reload or restart, which apply the
// file again, unless the write asks to persist them (persist.go), which
// rewrites the file.
//
// control implements admin.Runtime.
type control struct {
	mu sync.Mutex
	a  *app
	// planOf plans a file as this replica runs it (-listen-address).
	planOf func(*File) (*plan, error)
	// etcd, if set, is where the configuration comes from: changes are
	// written there.
	etcd *etcdSource
	// upgrades carries POST /api/upgrade to the main loop, which
	// upgrades as on SIGUSR2 and answers on the channel it is sent.
	upgrades chan chan upgradeResult
}

// upgradeResult is how an upgrade the API asked for went: the new
// process's PID, or why this one keeps serving.
type upgradeResult struct {
	pid int
	err error
}

// Upgrade asks the main loop for a binary upgrade, as SIGUSR2 does, and
// waits for its outcome (admin.Upgrader).
func (c *control) Upgrade(ctx context.Context) (admin.Change, error) {
	reply := make(chan upgradeResult, 1)
	select {
	case c.upgrades <- reply:
	case <-ctx.Done():
		return admin.Change{}, ctx.Err()
	}
	r := <-reply // the upgrade ends within -upgrade-timeout
	if r.err != nil {
		return admin.Change{}, fmt.Errorf("%w; this process keeps serving", r.err)
	}
	return admin.Change{What: "upgrade", Before: fmt.Sprintf("pid %d", os.Getpid()), After: fmt.Sprintf("pid %d", r.pid)}, nil
}

// reload applies p, as app.reload, then starts the kept listeners the
// API stopped: a reload applies the configuration whole, and in it every
// listener runs.
func (c *control) reload(p *plan) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reloadLocked(p)
}

// reloadLocked is reload for a holder of c.mu.
func (c *control) reloadLocked(p *plan) error {
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

// stop drains the app, as app.stop; retire, after an upgrade, as
// app.retire.
func (c *control) stop(ctx context.Context, retire bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if retire {
		return c.a.retire(ctx)
	}
	return c.a.stop(ctx)
}

// upgrade starts the process's successor with generation, the sockets
// of the running listeners and the process's keys, and waits until it
// is ready (see upgrader.upgrade). Reloads and API changes wait
// meanwhile: the successor reads the configuration as it is now.
func (c *control) upgrade(u *upgrader, generation int) (pid int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	hs, err := c.a.listenerSockets()
	if err != nil {
		return 0, fmt.Errorf("upgrade: %w", err)
	}
	links, err := c.a.env.qh.prepare()
	if err != nil {
		closeHanded(hs)
		return 0, err
	}
	h := handoff{StickyKey: c.a.env.stickyKey, Health: c.a.health()}
	for _, k := range c.a.env.tickets.current() {
		h.TicketKeys = append(h.TicketKeys, k[:])
	}
	pid, err = u.upgrade(generation, h, append(hs, links...))
	c.a.env.qh.done(err)
	return pid, err
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
	for _, g := range r.groups() {
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
// maintenance stays there). With etcd, or persist, the weight is
// written to the configuration instead (see control).
func (c *control) SetWeight(name, id string, w int, persist bool) (admin.Change, error) {
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
	if c.etcd != nil || persist {
		where, err := c.writeThrough(name, id, func(int) int { return w })
		if err != nil {
			return admin.Change{}, err
		}
		ch.What += where
		if c.etcd != nil && where != "" { // the watch applies it
			ch.After = strconv.Itoa(w)
			return ch, nil
		}
	}
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
// holds it. With etcd, or persist, drain and ready are written to the
// configuration instead, as CLB weights (see control): drain as Weight
// 0, ready as the weight the backend had before (100 if none) where
// the configuration says 0. Maintenance has no field there: with etcd
// it stays this replica's (the Change says so); persist refuses it.
func (c *control) SetState(name, id string, st balancer.State, persist bool) (admin.Change, error) {
	if persist && st == balancer.Maint && c.etcd == nil {
		return admin.Change{}, fmt.Errorf("%w: state maint has no field in the configuration: it cannot be persisted", admin.ErrInvalid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, m, err := c.groups(name, id)
	if err != nil {
		return admin.Change{}, err
	}
	ch := admin.Change{What: fmt.Sprintf("listener %s backend %s state", name, id), Before: m.State().String(), After: st.String()}
	switch {
	case st == balancer.Maint && c.etcd != nil:
		ch.What += " (this replica only, until its next reload: maintenance has no field in the configuration)"
	case c.etcd != nil || persist:
		before := m.Weight()
		where, err := c.writeThrough(name, id, func(old int) int {
			switch {
			case st == balancer.Drain:
				return 0
			case old == 0:
				return before
			}
			return old
		})
		if err != nil {
			return admin.Change{}, err
		}
		ch.What += where
		if c.etcd != nil && where != "" { // the watch applies it
			return ch, nil
		}
	}
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
// does, all or nothing. With etcd it is written there instead, on the
// revision this replica runs (see control), and every replica applies it
// from its watch. The file on disk is rewritten only with persist, after
// the configuration applied.
func (c *control) ReplaceConfig(data []byte, persist bool) (admin.Change, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.a.plan.file
	f, err := Parse(cur.name, cur.dir, data)
	if err == nil {
		f.keys = cur.keys // PEM paths name the keys of the revision running
	}
	var p *plan
	if err == nil {
		p, err = c.planOf(f)
	}
	if c.a.refuse(err) != nil {
		return admin.Change{}, fmt.Errorf("%w: configuration refused, the old one keeps running:\n%w", admin.ErrInvalid, err)
	}
	ch := admin.Change{What: "configuration", Before: fmt.Sprintf("%d listeners", len(cur.Listeners)), After: fmt.Sprintf("%d listeners", len(p.listeners))}
	if c.etcd != nil {
		where, err := c.save(data)
		if err != nil {
			return admin.Change{}, err
		}
		ch.What += " (" + where + ")"
		return ch, nil
	}
	if persist {
		if _, err := c.document(); err != nil { // refuse before applying
			return admin.Change{}, err
		}
	}
	if err := c.a.refuse(c.reloadLocked(p)); err != nil {
		return admin.Change{}, fmt.Errorf("%w: configuration refused, the old one keeps running: %w", admin.ErrConflict, err)
	}
	if persist {
		where, err := c.save(data)
		if err != nil {
			return admin.Change{}, fmt.Errorf("configuration applied, but %w", err)
		}
		ch.What += " (" + where + ")"
	}
	return ch, nil
}

// writeThrough edits the Weight of backend id in the groups of listener
// name, in the document running, by set (given the Weight there), and
// saves the document. It returns what the audit line adds, "" if the
// document already said so and nothing was written.
func (c *control) writeThrough(name, id string, set func(old int) int) (string, error) {
	doc, err := c.document()
	if err != nil {
		return "", err
	}
	doc, changed, err := editWeight(doc, &c.a.running[name].spec.src, id, set)
	if err != nil || !changed {
		return "", err
	}
	where, err := c.save(doc)
	if err != nil {
		return "", err
	}
	return " (" + where + ")", nil
}

// document returns the document the configuration running was decoded
// from, to edit: etcd's value at the revision running, or the file,
// which must still hold that document (else the edit would undo what
// was written there since).
func (c *control) document() ([]byte, error) {
	f := c.a.plan.file
	if f.src == nil {
		return nil, fmt.Errorf("%w: no configuration file to write to (the demo's configuration is built in code)", admin.ErrConflict)
	}
	if c.etcd != nil {
		return f.src, nil
	}
	disk, err := os.ReadFile(f.path(f.name))
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(disk, f.src) {
		return nil, fmt.Errorf("%w: %s differs from the configuration running (edited since it was loaded, or replaced by PUT /api/config without persist): reload it (SIGHUP) first", admin.ErrConflict, f.path(f.name))
	}
	return f.src, nil
}

// save writes data, an edited document, to where the configuration
// running came from: etcd, on the revision running, or the file. It
// returns where it wrote, for the audit line.
func (c *control) save(data []byte) (string, error) {
	f := c.a.plan.file
	if c.etcd != nil {
		rev, err := c.etcd.write(data, f.keys.rev)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("written to %s/%s at revision %d; replicas apply it from etcd", c.etcd.url, etcdConfigKey, rev), nil
	}
	path := f.path(f.name)
	if err := writeFileAtomic(path, data, modeOf(path, 0o644)); err != nil { // the file keeps its mode
		return "", fmt.Errorf("%s not rewritten: %w", f.path(f.name), err)
	}
	f.src = data // the file holds what runs again
	return "persisted to " + f.path(f.name), nil
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
