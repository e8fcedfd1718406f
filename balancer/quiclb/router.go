package quiclb

import (
	"fmt"
	"sync/atomic"
)

// Router routes QUIC packets to backends by the server ID in their
// destination connection ID: a Decoder and a ServerIDs table behind one
// method, Route, which is the shape a UDP listener's QUIC router takes
// (lbkit's listener.QUICRouter), so a *Router plugs in as
// Config.QUICRouter.
//
// The table can be replaced while the router is in use (SetServerIDs):
// updates build a new table and publish it with one atomic store; Route
// does one atomic load and never locks.
//
// The zero Router routes nothing; most callers want NewRouter. A Router
// is safe for concurrent use and must not be copied after first use.
type Router struct {
	dec *Decoder
	ids atomic.Pointer[ServerIDs]
}

// RouterConfig configures a [Router].
type RouterConfig struct {
	// Decoder reads server IDs out of connection IDs. Required.
	Decoder *Decoder

	// ServerIDs maps each server ID to its backend. Every ID must have the
	// decoder's ServerIDLen, since one of another length would never be
	// decoded, and every backend ID must be non-empty. The router keeps
	// the map: the caller must not modify it afterwards (see [ServerIDs]);
	// call [Router.SetServerIDs] with a new table instead. If nil, nothing
	// routes until SetServerIDs.
	ServerIDs ServerIDs
}

// NewRouter returns a router configured by cfg, or a *ConfigError naming
// the first refused field.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.Decoder == nil {
		return nil, configErr("Decoder", "", "no decoder given")
	}
	r := &Router{dec: cfg.Decoder}
	if err := r.SetServerIDs(cfg.ServerIDs); err != nil {
		return nil, err
	}
	return r, nil
}

// Route returns the backend whose server ID dcid, a destination
// connection ID, encodes, or ok false when dcid is not routable under the
// router's configuration or names no server in the current table; the
// caller then falls back to a four-tuple hash, as the draft asks. It
// allocates nothing, and dcid is not retained.
func (r *Router) Route(dcid []byte) (backendID string, ok bool) {
	ids := r.ids.Load()
	if r.dec == nil || ids == nil {
		return "", false
	}
	return r.dec.Backend(dcid, *ids)
}

// SetServerIDs replaces the table of server IDs, for instance when a
// backend joins or leaves: flows started afterwards see the new table.
// The router keeps ids; the caller must not modify it afterwards. A table
// that breaks a rule of [RouterConfig.ServerIDs] is refused with a
// *ConfigError, and the router keeps its current table.
func (r *Router) SetServerIDs(ids ServerIDs) error {
	if r.dec != nil {
		want := r.dec.c.cfg.ServerIDLen
		for id, backend := range ids {
			if id.Len() != want {
				return configErr("ServerIDs", id.String(), fmt.Sprintf("length %d octets, want the decoder's ServerIDLen %d", id.Len(), want))
			}
			if backend == "" {
				return configErr("ServerIDs", id.String(), "empty backend ID")
			}
		}
	}
	r.ids.Store(&ids)
	return nil
}

// ServerIDs returns the current table. It must not be modified.
func (r *Router) ServerIDs() ServerIDs {
	if ids := r.ids.Load(); ids != nil {
		return *ids
	}
	return nil
}

// Decoder returns the router's decoder.
func (r *Router) Decoder() *Decoder { return r.dec }
