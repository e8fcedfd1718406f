package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
)

// versionLen is how many hex digits of the SHA-256 name a configuration:
// 12 (48 bits), like a short git commit, enough to tell apart the
// configurations a fleet ever runs and short enough to compare by eye.
const versionLen = 12

// configDigest hashes everything a configuration is read from, in the
// order it is read: the file and then the PEM files it names, or every
// key and value of an etcd snapshot. Its version is the configuration's
// version as /status.json and clb_config_info report it, so two
// processes reading the same bytes report the same version, whatever
// their flags (-listen-address) say.
type configDigest struct{ h hash.Hash }

func newDigest() *configDigest { return &configDigest{h: sha256.New()} }

// add hashes one part, length-prefixed so that parts cannot run into
// each other.
func (d *configDigest) add(data []byte) {
	d.h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(data))))
	d.h.Write(data)
}

func (d *configDigest) version() string {
	return hex.EncodeToString(d.h.Sum(nil))[:versionLen]
}

// snapshotDigest hashes every key of snap and its value, keys in order.
// The revision is left out: the same configuration put again is the same
// version (the revision is reported beside it, as config.revision).
func snapshotDigest(snap etcdSnapshot) *configDigest {
	d := newDigest()
	for _, k := range slices.Sorted(maps.Keys(snap.kv)) {
		d.add([]byte(k))
		d.add(snap.kv[k])
	}
	return d
}

// version names the configuration f was read from; a File built in code
// (the demo's) is named by the hash of its JSON form.
func (f *File) version() string {
	if f.digest != nil {
		return f.digest.version()
	}
	d := newDigest()
	b, err := json.Marshal(f)
	if err != nil { // cannot happen: a File holds only plain values
		panic(err)
	}
	d.add(b)
	return d.version()
}

// generationEnv names the environment variable that carries a process's
// upgrade generation: unset or 0 for a process started normally; a binary
// upgrade starts its successor with its own generation plus one.
const generationEnv = "CLB_GENERATION"

// parseGeneration reads the value of generationEnv.
func parseGeneration(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want a whole number, 0 or more", generationEnv, v)
	}
	return n, nil
}

// appliedConfig is the configuration an app applied last.
type appliedConfig struct {
	version string
	at      time.Time
}

// processStatus returns the admin server's view of the process: this
// one's PID, its start time and generation, and the configuration a
// applied last, read when asked.
func (a *app) processStatus(started time.Time, generation int) func() admin.ProcessStatus {
	pid := os.Getpid()
	return func() admin.ProcessStatus {
		s := admin.ProcessStatus{PID: pid, Started: started, Generation: generation, ReloadsRefused: a.refused.Load()}
		if c := a.applied.Load(); c != nil {
			s.ConfigVersion, s.ConfigApplied = c.version, c.at
		}
		return s
	}
}
