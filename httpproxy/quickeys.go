package httpproxy

import "github.com/quic-go/quic-go"

// QUICKeys are the secrets an HTTP/3 front end derives its QUIC tokens
// from: stateless-reset tokens, which let a server that lost a
// connection tell its client so in one packet, and address-validation
// tokens (Retry and NEW_TOKEN), which spare a returning client a round
// trip. Replicas of a fleet behind one QUIC-LB router should share them,
// as they share TLS session-ticket keys: a replica that receives a packet
// of a connection it does not hold — the client's first packet after a
// restart, or one a router sent astray — then resets it with a token the
// client accepts, and a token one replica issued is good at another.
//
// The zero value has no keys: no stateless resets are sent (the client
// of a lost connection waits for its idle timeout), and each QUIC
// transport makes its own random token key, good until it closes.
//
// Keys are secrets: keep them as the session-ticket keys are kept.
type QUICKeys struct {
	// StatelessReset is quic.Transport's StatelessResetKey. If nil, no
	// stateless resets are sent.
	StatelessReset *quic.StatelessResetKey
	// Token is quic.Transport's TokenGeneratorKey. If nil, a random key
	// per transport.
	Token *quic.TokenGeneratorKey
}
