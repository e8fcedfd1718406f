package tlspolicy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"time"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// SessionLifetime is how long a session ticket stays valid (docs/model.md §9).
const SessionLifetime = 300 * time.Second

// maxLifetime is crypto/tls's own cap on a ticket's age.
const maxLifetime = 7 * 24 * time.Hour

// stampPrefix marks this package's entry in tls.SessionState.Extra.
var stampPrefix = []byte("lbkit/tlspolicy/created/v1:")

// LimitSessionLifetime makes the server cfg refuse session tickets older
// than max: a client that presents one gets a full handshake instead of
// resumption. max must be 1s–168h (crypto/tls's own limit is 7 days).
//
// It sets cfg.WrapSession and cfg.UnwrapSession, replacing any set before;
// they encrypt tickets with cfg's session ticket keys (cfg.EncryptTicket),
// stamp each ticket with its creation time from cfg.Time (time.Now if nil)
// and check the stamp on the way back. Both hooks refer to cfg itself, so
// clones of cfg (http.Server makes one) share its keys and its clock.
//
// TLS 1.2 has no ticket lifetime of its own and crypto/tls renews a ticket
// on every resumption; to keep the limit counted from the full handshake,
// a resumed TLS 1.2 connection gets an empty ticket (RFC 5077 §3.3: the
// client keeps its old one). A TLS 1.3 resumption derives a new secret, so
// its new ticket is valid for max from then.
//
// Known gap: clients are not told max. crypto/tls fixes what a ticket
// advertises and has no seam to change it: a TLS 1.3 NewSessionTicket
// always says 7 days (`m.lifetime = uint32(maxSessionTicketLifetime /
// time.Second)` in Go's crypto/tls/handshake_server_tls13.go) and a TLS
// 1.2 one always carries a lifetime hint of 0, "unspecified"
// (newSessionTicketMsg.marshal in handshake_messages.go). A client
// therefore keeps a ticket for up to 7 days and may offer it after max;
// the server then answers with a full handshake, which costs the client
// nothing but the resumption. Rewriting the encrypted ticket message would
// take the connection's traffic secrets, so lbkit does not.
func LimitSessionLifetime(cfg *tls.Config, max time.Duration) error {
	if max < time.Second || max > maxLifetime {
		return cfgerr.New(pkg, "SessionLifetime", max, "out of range 1s–168h0m0s")
	}
	now := func() time.Time {
		if cfg.Time != nil {
			return cfg.Time()
		}
		return time.Now()
	}
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		if cs.DidResume && cs.Version < tls.VersionTLS13 {
			return []byte{}, nil
		}
		ss.Extra = append(ss.Extra, stamp(now()))
		return cfg.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := cfg.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return nil, err
		}
		created, ok := readStamp(ss.Extra)
		if !ok {
			return nil, nil // not ours, or from before the limit was set
		}
		age := now().Sub(created)
		if age > max || age < -time.Minute {
			return nil, nil
		}
		return ss, nil
	}
	return nil
}

func stamp(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(stampPrefix), uint64(t.UnixNano()))
}

func readStamp(extra [][]byte) (time.Time, bool) {
	for _, e := range extra {
		if rest, ok := bytes.CutPrefix(e, stampPrefix); ok && len(rest) == 8 {
			return time.Unix(0, int64(binary.BigEndian.Uint64(rest))), true
		}
	}
	return time.Time{}, false
}
