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
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
	// Cache, if set, is a file that keeps the last snapshot applied, for
	// a start while etcd is unreachable (see etcdCache).
	Cache string
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
	tls    *tls.Config // nil for plain TCP
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
	if o.User != "" && o.Password == "" {
		// The client would skip authentication and etcd would answer
		// "user name is empty", naming neither the user nor the password.
		return nil, fmt.Errorf("-etcd-user %q: $CLB_ETCD_PASSWORD is empty", o.User)
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
	// New authenticates when a user is given, so its error may be
	// any of read's.
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, o.explain(err, cfg.Endpoints, cfg.TLS, prefix))
	}
	return &etcdSource{
		url: url, prefix: prefix, cli: cli, log: log, opts: o, tls: cfg.TLS, now: time.Now,
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

// explain adds to err, an answer of etcd or of its client, what the
// -etcd-* flags can do about it. A link that never comes up (a TLS
// handshake refused either way, plain TCP to an etcd serving TLS) shows
// only as a timeout, the client retrying until the deadline; so explain
// dials the endpoints itself to find the cause.
func (o etcdOptions) explain(err error, endpoints []string, tc *tls.Config, prefix string) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("-etcd-user %q and $CLB_ETCD_PASSWORD: %w", o.User, err)
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return fmt.Errorf("%w: etcd requires authentication (set -etcd-user and $CLB_ETCD_PASSWORD)", err)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Errorf("%w: etcd user %q may not read %s/", err, o.User, prefix)
	case !errors.Is(err, context.DeadlineExceeded):
		return err
	}
	var causes []string
	for _, ep := range endpoints {
		if c := o.linkProblem(hostOf(ep), tc); c != "" {
			causes = append(causes, c)
		}
	}
	if len(causes) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(causes, "; "))
}

// hostOf is the HOST:PORT of a client endpoint, scheme://HOST:PORT.
func hostOf(endpoint string) string {
	_, h, ok := strings.Cut(endpoint, "://")
	if !ok {
		return endpoint
	}
	return h
}

// linkProblem dials etcd at host as the client would, with tc (nil for
// plain TCP), and says what stops the link and which flag fixes it, or
// "" if it finds nothing wrong.
func (o etcdOptions) linkProblem(host string, tc *tls.Config) string {
	conn, err := net.DialTimeout("tcp", host, o.Timeout)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(o.Timeout))
	if tc == nil {
		// etcd answers plain HTTP/2 with nothing the client reports;
		// a TLS handshake that verifies nothing tells it serves TLS.
		if tls.Client(conn, &tls.Config{InsecureSkipVerify: true}).Handshake() == nil {
			return fmt.Sprintf("etcd at %s serves TLS: give the CA of its certificate with -etcd-cacert", host)
		}
		return ""
	}
	c := tc.Clone()
	c.ServerName, _, _ = net.SplitHostPort(host)
	c.NextProtos = []string{"h2"}
	tconn := tls.Client(conn, c)
	err = tconn.Handshake()
	if err == nil {
		// Under TLS 1.3 the server judges the client's certificate
		// after the client's handshake ends: a refusal is an alert
		// on the first read. An accepted client gets etcd's HTTP/2
		// settings.
		_, err = tconn.Read(make([]byte, 1))
	}
	var (
		unknownCA   x509.UnknownAuthorityError
		wrongHost   x509.HostnameError
		notTLS      tls.RecordHeaderError
		op          *net.OpError
		verifyError *tls.CertificateVerificationError
	)
	// An alert etcd sent about the certificate: which one, only the
	// alert's text tells (bad, unknown CA, required, expired…).
	refused := errors.As(err, &op) && op.Op == "remote error" && strings.Contains(op.Err.Error(), "certificate")
	switch {
	case err == nil:
		return ""
	case errors.As(err, &unknownCA) && o.CACert == "":
		return fmt.Sprintf("etcd at %s: %v: give the CA of its certificate with -etcd-cacert", host, err)
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("etcd at %s: %v: -etcd-cacert %s does not hold the CA of its certificate", host, err, o.CACert)
	case errors.As(err, &wrongHost):
		return fmt.Sprintf("etcd at %s: %v: its certificate does not name the address in -config", host, err)
	case errors.As(err, &verifyError):
		return fmt.Sprintf("etcd at %s: %v", host, err)
	case errors.As(err, &notTLS):
		return fmt.Sprintf("etcd at %s does not serve TLS: drop -etcd-cacert, -etcd-cert and -etcd-key", host)
	case refused && o.Cert == "":
		return fmt.Sprintf("etcd at %s refused the TLS link (%v): it wants a client certificate, give one with -etcd-cert and -etcd-key", host, err)
	case refused:
		return fmt.Sprintf("etcd at %s refused the client certificate -etcd-cert %s (%v)", host, o.Cert, err)
	}
	return ""
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
		return etcdSnapshot{}, fmt.Errorf("%s: %w", s.url, s.opts.explain(err, s.cli.Endpoints(), s.tls, s.prefix))
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
	f.keys = &etcdKeys{prefix: s.prefix, kv: snap.kv, rev: snap.rev}
	f.digest = snapshotDigest(snap)
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

// write puts data at PREFIX/config if that key has not changed since
// revision rev, the one the replica runs: a compare-and-swap, so that a
// writer who got there first (another replica, an operator's etcdctl)
// is not overwritten unseen. The replicas, this one included, apply the
// write through their watch like any put. write returns the revision of
// the put; a lost race is an admin.ErrConflict naming the revision that
// won.
func (s *etcdSource) write(data []byte, rev int64) (int64, error) {
	key := s.prefix + "/" + etcdConfigKey
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "<", rev+1)).
		Then(clientv3.OpPut(key, string(data))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s.url, s.opts.explain(err, s.cli.Endpoints(), s.tls, s.prefix))
	}
	if !resp.Succeeded {
		var won int64
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			won = kvs[0].ModRevision
		}
		return 0, fmt.Errorf("%w: %s changed at revision %d, after revision %d this replica runs: read it again (GET /api/config once the replica has applied it) and retry", admin.ErrConflict, key, won, rev)
	}
	return resp.Header.Revision, nil
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

// applied records the outcome of applying snap: the revision running
// (kept in the -etcd-cache file too), or one more refused configuration
// and why. The cache is written before the status shows the revision,
// so whoever sees a revision running finds it in the cache.
func (s *etcdSource) applied(snap etcdSnapshot, err error) {
	rev := snap.rev
	if err == nil {
		s.save(snap)
	}
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
	rev    int64 // of the snapshot: the runtime API writes on it
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
	fs.StringVar(&o.Cache, "etcd-cache", "", "with -config etcd://…: `file` keeping the last configuration applied (mode 0600: it holds keys), run at a start while etcd is unreachable")
	fs.DurationVar(&o.Probe, "etcd-probe", time.Second, "with -config etcd://…: how often the link to etcd is checked; a check not answered within it means disconnected")
	return o
}
