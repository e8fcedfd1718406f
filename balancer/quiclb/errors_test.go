package quiclb

import (
	"bytes"
	"testing"

	"github.com/lbkit/lbkit/internal/errtest"
)

// Every error the package returns names it once, including the
// generator's wrapped read error and nonce exhaustion.
func TestErrorsCarryOnePrefix(t *testing.T) {
	d, _ := NewDecoder(Config{})
	gen := func(cfg Config, id string) error {
		_, err := NewGenerator(GeneratorConfig{Config: cfg, ServerID: mustID(t, id)})
		return err
	}
	g, err := NewGenerator(GeneratorConfig{Config: Config{ServerIDLen: 15, NonceLen: 4}, ServerID: mustID(t, "0102030405060708090a0b0c0d0e0f")})
	if err != nil {
		t.Fatal(err)
	}
	g.used.Store(g.limit)
	errtest.OnePrefix(t, "quiclb", map[string]error{
		"config id 7":       Config{ConfigID: 7}.Validate(),
		"config id":         Config{ConfigID: 9}.Validate(),
		"server id len":     Config{ServerIDLen: 16}.Validate(),
		"nonce len":         Config{NonceLen: 3}.Validate(),
		"sum":               Config{ServerIDLen: 15, NonceLen: 5}.Validate(),
		"key":               Config{Key: []byte("short")}.Validate(),
		"decoder":           errtest.Err(NewDecoder(Config{NonceLen: 30})),
		"generator config":  gen(Config{NonceLen: 30}, "0102"),
		"generator id":      gen(Config{}, "01"),
		"generator rand":    gen(Config{Rand: bytes.NewReader(nil)}, "0102"),
		"nonces used up":    errtest.Err(g.GenerateConnectionID()),
		"server id hex":     errtest.Err(ParseServerID("zz")),
		"server id length":  errtest.Err(MakeServerID(nil)),
		"router decoder":    errtest.Err(NewRouter(RouterConfig{})),
		"router id length":  errtest.Err(NewRouter(RouterConfig{Decoder: d, ServerIDs: ServerIDs{mustID(t, "01"): "a"}})),
		"router no backend": errtest.Err(NewRouter(RouterConfig{Decoder: d, ServerIDs: ServerIDs{mustID(t, "0102"): ""}})),
	})
}
