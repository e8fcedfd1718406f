package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// etcdCache is the on-disk copy of the last etcd snapshot a replica
// applied (-etcd-cache): the keys under the prefix and their revision. A
// replica that starts while etcd is unreachable runs it, says so on its
// status page, and watches from its revision once etcd answers, so it
// catches up with every write it missed (or reads the prefix again if
// that revision was compacted). It holds the configuration's secrets —
// private keys, cookie and ticket keys — and is written with mode 0600,
// whole or not at all (a temporary file renamed over it).
type etcdCache struct {
	Prefix   string            `json:"prefix"`
	Revision int64             `json:"revision"`
	Keys     map[string][]byte `json:"keys"`
}

// errNoCache is cached's error without -etcd-cache.
var errNoCache = errors.New("no -etcd-cache")

// save writes snap to the cache file, if there is one; a failure is
// logged, since the running configuration is unaffected.
func (s *etcdSource) save(snap etcdSnapshot) {
	path := s.opts.Cache
	if path == "" {
		return
	}
	data, _ := json.Marshal(etcdCache{Prefix: s.prefix, Revision: snap.rev, Keys: snap.kv}) // cannot fail: strings and bytes
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		s.log.Warn("etcd: cache not written; the next start needs etcd", "file", path, "err", err)
	}
}

// cached returns the snapshot the cache file holds, which must be of
// this source's prefix.
func (s *etcdSource) cached() (etcdSnapshot, error) {
	path := s.opts.Cache
	if path == "" {
		return etcdSnapshot{}, errNoCache
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return etcdSnapshot{}, fmt.Errorf("-etcd-cache: %w", err)
	}
	var c etcdCache
	if err := json.Unmarshal(data, &c); err != nil {
		return etcdSnapshot{}, fmt.Errorf("-etcd-cache %s: %w", path, err)
	}
	if c.Prefix != s.prefix {
		return etcdSnapshot{}, fmt.Errorf("-etcd-cache %s: holds prefix %q, not %q", path, c.Prefix, s.prefix)
	}
	if c.Keys == nil {
		c.Keys = map[string][]byte{}
	}
	return etcdSnapshot{rev: c.Revision, kv: c.Keys}, nil
}
