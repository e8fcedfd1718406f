package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// etcdScheme starts a -config value naming an etcd prefix instead of a
// file: etcd://HOST:PORT[,HOST:PORT…]/PREFIX.
const etcdScheme = "etcd://"

// The key layout under PREFIX (README.md, "A fleet configured through
// etcd"): PREFIX/config holds the whole configuration document, YAML or
// JSON, exactly what a file would hold; a relative PEM path in it,
// certs/web.pem say, names the key PREFIX/certs/web.pem. Reading the
// whole prefix in one Get gives a document and its certificates at one
// revision.
const etcdConfigKey = "config"

// etcdOptions are the -etcd-* flags: how to reach and authenticate to
// etcd. The zero value is plain TCP without authentication.
type etcdOptions struct {
	CACert   string // PEM file of the CAs that sign etcd's server certificates; turns TLS on
	Cert     string // PEM client certificate for etcd (with Key); turns TLS on
	Key      string
	User     string // etcd user; its password is in the CLB_ETCD_PASSWORD environment variable
	Password string
	// Timeout bounds a read of the prefix (at start, on SIGHUP and after
	// a compaction) and a reconnection attempt.
	Timeout time.Duration
	// Probe is how often the link to etcd is checked, so the status page
	// says "disconnected" while it is down; a check not answered within
	// Probe counts as down.
	Probe time.Duration
}

// etcdSource is a clb configuration kept in etcd under one prefix, and the
// watch that follows it.
//
// The model: read the whole prefix at one revision (a snapshot), then
// watch the prefix from the next revision. Each watch event is applied to
// the snapshot, which is then handed to the main loop through updates, a
// one-slot mailbox holding only the newest snapshot: a burst of writes
// that arrives while a reload runs is applied as one reload of the
// latest. When the link to etcd breaks, the client resumes the watch from
// the last revision it saw, so no write is missed; if that revision has
// been compacted meanwhile, the source reads the prefix again and
// watches from there. The link is checked every Probe; Status reports
// the result and the revision running.
//
// Create one with newEtcdSource, read the first snapshot with read, then
// start watch in its own goroutine. Status and applied are safe for
// concurrent use.
type etcdSource struct {
	url    string // as given, for messages and the status page
	prefix string // without the trailing slash
	cli    *clientv3.Client
	log    *slog.Logger
	opts   etcdOptions
	now    func() time.Time

	// updates holds the newest snapshot not yet taken by the main loop.
	updates chan etcdSnapshot

	mu     sync.Mutex
	status admin.ConfigStatus
}

// etcdSnapshot is every key under the prefix at one revision.
type etcdSnapshot struct {
	rev int64
	kv  map[string][]byte // by key relative to the prefix ("config", "certs/web.pem")
}

// parseEtcdURL splits etcd://HOST:PORT[,HOST:PORT…]/PREFIX.
func parseEtcdURL(u string) (endpoints []string, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, etcdScheme)
	hosts, p, _ := strings.Cut(rest, "/")
	p = strings.TrimSuffix(p, "/")
	if !ok || hosts == "" || p == "" || strings.Contains(hosts, "@") {
		return nil, "", fmt.Errorf("-config %q: want etcd://HOST:PORT[,HOST:PORT…]/PREFIX (credentials go in -etcd-user and CLB_ETCD_PASSWORD)", u)
	}
	for _, h := range strings.Split(hosts, ",") {
		endpoints = append(endpoints, "http://"+h)
	}
	return endpoints, "/" + p, nil
}

// newEtcdSource connects (lazily: the first read dials) to the etcd
// named by url.
func newEtcdSource(url string, o etcdOptions, log *slog.Logger) (*etcdSource, error) {
	endpoints, prefix, err := parseEtcdURL(url)
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: o.Timeout,
		// A link that carries nothing (a watch with no writes) is
		// noticed dead by keepalive, not only by the next probe.
		DialKeepAliveTime:    o.Probe,
		DialKeepAliveTimeout: o.Timeout,
		PermitWithoutStream:  true,
		Username:             o.User,
		Password:             o.Password,
		Logger:               zap.NewNop(),
		// gRPC's default reconnect backoff grows to two minutes; a
		// replica should be back within a second of etcd.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: o.Timeout,
		})},
	}
	if o.CACert != "" || o.Cert != "" {
		if cfg.TLS, err = o.tlsConfig(); err != nil {
			return nil, err
		}
		for i, e := range cfg.Endpoints {
			cfg.Endpoints[i] = "https://" + strings.TrimPrefix(e, "http://")
		}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &etcdSource{
		url: url, prefix: prefix, cli: cli, log: log, opts: o, now: time.Now,
		updates: make(chan etcdSnapshot, 1),
		status:  admin.ConfigStatus{Source: url},
	}, nil
}

// tlsConfig is the client's TLS configuration from the -etcd-cacert,
// -etcd-cert and -etcd-key files.
func (o etcdOptions) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		data, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("-etcd-cacert: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("-etcd-cacert %q: no PEM certificate", o.CACert)
		}
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, errors.New("-etcd-cert and -etcd-key go together")
	}
	if o.Cert != "" {
		cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("-etcd-cert: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// close ends the client, which ends a running watch.
func (s *etcdSource) close() { s.cli.Close() }

// read returns every key under the prefix at the current revision.
func (s *etcdSource) read(ctx context.Context) (etcdSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+"/", clientv3.WithPrefix())
	if err != nil {
		s.down(err)
		return etcdSnapshot{}, fmt.Errorf("%s: %w", s.url, err)
	}
	s.up()
	snap := etcdSnapshot{rev: resp.Header.Revision, kv: make(map[string][]byte, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		snap.kv[strings.TrimPrefix(string(kv.Key), s.prefix+"/")] = kv.Value
	}
	return snap, nil
}

// file decodes the configuration document of snap, with its PEM paths
// resolved against the snapshot's keys. Its errors are those of a file.
func (s *etcdSource) file(snap etcdSnapshot) (*File, error) {
	name := s.url + "/" + etcdConfigKey
	data, ok := snap.kv[etcdConfigKey]
	if !ok {
		return nil, Problems{{File: name, Msg: fmt.Sprintf("no key %s/%s at revision %d", s.prefix, etcdConfigKey, snap.rev)}}
	}
	f, err := Parse(name, "", data)
	if err != nil {
		return nil, err
	}
	f.keys = &etcdKeys{prefix: s.prefix, kv: snap.kv}
	return f, nil
}

// watch follows the prefix from the revision after from until ctx ends,
// handing each new snapshot to updates. It returns when ctx is done or
// the client is closed.
func (s *etcdSource) watch(ctx context.Context, from etcdSnapshot) {
	go s.probe(ctx)
	cur := from
	for ctx.Err() == nil {
		next, err := s.follow(ctx, cur)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errCompacted) {
			s.log.Warn("etcd: watch revision compacted; reading the prefix again", "source", s.url, "after", cur.rev)
			snap, err := s.read(ctx)
			if err != nil {
				s.log.Warn("etcd: read failed; the last good configuration keeps running", "source", s.url, "err", err)
				s.pause(ctx)
				continue
			}
			if !sameKeys(snap.kv, next.kv) {
				s.publish(snap)
			}
			next = snap
		} else {
			s.down(err)
			s.log.Warn("etcd: watch ended; resuming", "source", s.url, "after", next.rev, "err", err)
			s.pause(ctx)
		}
		cur = next
	}
}

// errCompacted is follow's error when etcd no longer has the revision to
// watch from.
var errCompacted = errors.New("watch revision compacted")

// follow watches from cur.rev+1, applying events to a copy of cur and
// publishing it after each batch; it returns the last snapshot and why
// the watch ended.
func (s *etcdSource) follow(ctx context.Context, cur etcdSnapshot) (etcdSnapshot, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := s.cli.Watch(wctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(cur.rev+1))
	for resp := range ch {
		if resp.CompactRevision != 0 {
			return cur, fmt.Errorf("%w: after %d, compacted up to %d", errCompacted, cur.rev, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return cur, err
		}
		s.up()
		if len(resp.Events) == 0 {
			continue
		}
		next := etcdSnapshot{rev: resp.Header.Revision, kv: maps.Clone(cur.kv)}
		for _, ev := range resp.Events {
			k := strings.TrimPrefix(string(ev.Kv.Key), s.prefix+"/")
			if ev.Type == clientv3.EventTypeDelete {
				delete(next.kv, k)
			} else {
				next.kv[k] = ev.Kv.Value
			}
		}
		s.publish(next)
		cur = next
	}
	if ctx.Err() != nil {
		return cur, ctx.Err()
	}
	return cur, errors.New("watch channel closed")
}

// publish replaces any snapshot the main loop has not taken yet with
// snap: only the newest is ever applied. watch is the only sender.
func (s *etcdSource) publish(snap etcdSnapshot) {
	select {
	case <-s.updates:
	default:
	}
	s.updates <- snap
	s.mu.Lock()
	s.status.Seen = max(s.status.Seen, snap.rev)
	s.mu.Unlock()
}

// pause waits one probe interval before a retry, or until ctx ends.
func (s *etcdSource) pause(ctx context.Context) {
	t := time.NewTimer(s.opts.Probe)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// probe checks the link every Probe with a one-key count, until ctx
// ends. The watch alone cannot tell: the client resumes a broken watch
// silently.
func (s *etcdSource) probe(ctx context.Context) {
	t := time.NewTicker(s.opts.Probe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.opts.Probe)
		_, err := s.cli.Get(pctx, s.prefix+"/"+etcdConfigKey, clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.down(fmt.Errorf("check of %s: %w", s.prefix+"/"+etcdConfigKey, err))
		} else {
			s.up()
		}
	}
}

// up records that etcd answered.
func (s *etcdSource) up() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.Connected {
		return
	}
	if !s.status.Since.IsZero() {
		s.log.Info("etcd: connected again", "source", s.url)
	}
	s.status.Connected, s.status.Since = true, s.now()
}

// down records that etcd did not answer, and why.
func (s *etcdSource) down(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.status.Connected {
		s.status.Connected, s.status.Since = false, now
		s.log.Warn("etcd: disconnected; the last good configuration keeps running", "source", s.url, "revision", s.status.Revision, "err", err)
	}
	s.status.Error, s.status.ErrorTime = err.Error(), now
}

// applied records the outcome of applying the snapshot at rev: the
// revision running, or one more refused configuration and why.
func (s *etcdSource) applied(rev int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Seen = max(s.status.Seen, rev)
	if err != nil {
		s.status.Refused++
		s.status.Error, s.status.ErrorTime = fmt.Sprintf("revision %d refused: %v", rev, err), s.now()
		return
	}
	s.status.Revision = rev
}

// Status returns the source's state for the admin server.
func (s *etcdSource) Status() admin.ConfigStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// sameKeys reports whether two snapshots hold the same keys and values.
func sameKeys(a, b map[string][]byte) bool { return maps.EqualFunc(a, b, bytes.Equal) }

// etcdKeys is where the PEM paths of a configuration read from etcd
// point: keys under the prefix, at the revision of the document.
type etcdKeys struct {
	prefix string
	kv     map[string][]byte
}

// read returns the value of the key PREFIX/name. Absolute names and
// names leaving the prefix are refused, as they name no key.
func (k *etcdKeys) read(name string) ([]byte, error) {
	clean := path.Clean(name)
	if path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("not a key under %s/ (write a path relative to the prefix)", k.prefix)}
	}
	v, ok := k.kv[clean]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("no key %s/%s in etcd", k.prefix, clean)}
	}
	return v, nil
}

// etcdFlags registers the -etcd-* flags on fs.
func etcdFlags(fs *flag.FlagSet) *etcdOptions {
	o := &etcdOptions{}
	fs.StringVar(&o.CACert, "etcd-cacert", "", "with -config etcd://…: PEM `file` of the CAs of etcd's server certificates; turns TLS on")
	fs.StringVar(&o.Cert, "etcd-cert", "", "with -config etcd://…: PEM client certificate `file` (with -etcd-key); turns TLS on")
	fs.StringVar(&o.Key, "etcd-key", "", "with -config etcd://…: PEM private key `file` of -etcd-cert")
	fs.StringVar(&o.User, "etcd-user", "", "with -config etcd://…: etcd `user`; the password is read from $CLB_ETCD_PASSWORD")
	fs.DurationVar(&o.Timeout, "etcd-timeout", 5*time.Second, "with -config etcd://…: bound of a read of the prefix (at start, on SIGHUP, after a compaction) and of a reconnection attempt")
	fs.DurationVar(&o.Probe, "etcd-probe", time.Second, "with -config etcd://…: how often the link to etcd is checked; a check not answered within it means disconnected")
	return o
}
