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

// LimitSessionLifetime makes the server cfg refuse to resume a session
// more than max after its full handshake: a client that offers a ticket
// for an older session gets a full handshake instead. max must be
// 1s–168h (crypto/tls's own limit is 7 days).
//
// The limit counts from the full handshake, however often the session is
// resumed in between: every resumption issues a new ticket, which carries
// the original handshake's time, so a client resumes each connection
// until max has passed and then makes one full handshake, which starts
// over. This is what RFC 8446 §4.6.1 recommends (limit "the total
// lifetime" of keying material from the initial handshake) and what
// crypto/tls does itself for TLS 1.2 (a re-issued ticket keeps its
// creation time), and it is how nginx documents ssl_session_timeout: the
// time "during which a client may reuse the session parameters". crypto/tls's
// own TLS 1.3 tickets instead restart the clock on every resumption,
// which would let a client that reconnects within max resume forever.
//
// It sets cfg.GetConfigForClient, cfg.WrapSession and cfg.UnwrapSession,
// replacing any set before. GetConfigForClient hands each handshake a copy
// of cfg, as cfg is then, whose hooks remember the resumed session's
// handshake time for the ticket they issue next; a caller that serves cfg
// from its own GetConfigForClient must return what cfg.GetConfigForClient
// returns. Served without it, cfg's own hooks still refuse old sessions
// but cannot date a resumed one, so the ticket issued on a resumed
// connection does not resume. Tickets are encrypted with cfg's session
// ticket keys (cfg.EncryptTicket) and dated by cfg.Time (time.Now if nil),
// so every copy, including http.Server's clone of cfg, shares cfg's keys
// and clock.
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
	cfg.WrapSession, cfg.UnwrapSession = sessionHooks(cfg, max, nil)
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := cfg.Clone()
		c.GetConfigForClient = nil
		c.WrapSession, c.UnwrapSession = sessionHooks(cfg, max, new(time.Time))
		return c, nil
	}
	return nil
}

// sessionHooks returns WrapSession and UnwrapSession hooks that encrypt
// with cfg's keys and limit a session to max after its full handshake.
// origin is one connection's memory: UnwrapSession records there when the
// session it accepted was first established, and WrapSession dates a
// resumed connection's ticket with it. crypto/tls stops at the first
// ticket it resumes, so the last one recorded is the one resumed. With
// origin nil (hooks shared by connections) a resumed connection's ticket
// goes undated, which UnwrapSession refuses.
func sessionHooks(cfg *tls.Config, max time.Duration, origin *time.Time) (
	func(tls.ConnectionState, *tls.SessionState) ([]byte, error),
	func([]byte, tls.ConnectionState) (*tls.SessionState, error),
) {
	now := func() time.Time {
		if cfg.Time != nil {
			return cfg.Time()
		}
		return time.Now()
	}
	wrap := func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		switch {
		case !cs.DidResume:
			ss.Extra = append(ss.Extra, stamp(now()))
		case origin != nil && !origin.IsZero():
			ss.Extra = append(ss.Extra, stamp(*origin))
		}
		return cfg.EncryptTicket(cs, ss)
	}
	unwrap := func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := cfg.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return nil, err
		}
		created, ok := readStamp(ss.Extra)
		if !ok {
			return nil, nil // not ours, undated, or from before the limit was set
		}
		age := now().Sub(created)
		if age > max || age < -time.Minute {
			return nil, nil
		}
		if origin != nil {
			*origin = created
		}
		return ss, nil
	}
	return wrap, unwrap
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
