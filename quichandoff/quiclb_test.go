package quichandoff_test

import (
	"testing"

	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/lbkit/lbkit/quichandoff"
)

// TestQUICLBIntact: over a QUIC-LB generator (plaintext and encrypted,
// without EncodeLength) the generation bit leaves the config rotation
// bits and the server ID readable: a QUIC-LB router routes the IDs of
// both generations alike.
func TestQUICLBIntact(t *testing.T) {
	id, err := quiclb.MakeServerID([]byte{0x0a, 0x01})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, quiclb.KeyLen)
	for i := range key {
		key[i] = byte(i)
	}
	for _, tc := range []struct {
		name string
		cfg  quiclb.Config
	}{
		{"plaintext", quiclb.Config{ConfigID: 3}},
		{"encrypted", quiclb.Config{ConfigID: 5, Key: key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := quiclb.NewGenerator(quiclb.GeneratorConfig{Config: tc.cfg, ServerID: id})
			if err != nil {
				t.Fatal(err)
			}
			dec, err := quiclb.NewDecoder(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for gen := range 2 {
				g := quichandoff.NewGenerator(inner, gen)
				for range 50 {
					cid, err := g.GenerateConnectionID()
					if err != nil {
						t.Fatal(err)
					}
					b := cid.Bytes()
					if int(b[0]&1) != gen || int(b[0]>>5) != tc.cfg.ConfigID {
						t.Fatalf("generation %d: first octet %#x, want low bit %d and config %d", gen, b[0], gen, tc.cfg.ConfigID)
					}
					if got, ok := dec.ServerID(b); !ok || got != id {
						t.Fatalf("generation %d: ID % x decodes to %v, %v; want %v", gen, b, got, ok, id)
					}
				}
			}
		})
	}
}
