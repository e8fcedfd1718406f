package quiclb

import "sync/atomic"

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

// NewRouter returns a router that decodes with dec and maps server IDs to
// backends with ids. The router keeps ids: the caller must not modify it
// afterwards (see ServerIDs); call SetServerIDs with a new table instead.
// A nil dec routes nothing.
func NewRouter(dec *Decoder, ids ServerIDs) *Router {
	r := &Router{dec: dec}
	r.ids.Store(&ids)
	return r
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
// The router keeps ids; the caller must not modify it afterwards.
func (r *Router) SetServerIDs(ids ServerIDs) { r.ids.Store(&ids) }

// ServerIDs returns the current table. It must not be modified.
func (r *Router) ServerIDs() ServerIDs {
	if ids := r.ids.Load(); ids != nil {
		return *ids
	}
	return nil
}

// Decoder returns the router's decoder.
func (r *Router) Decoder() *Decoder { return r.dec }
