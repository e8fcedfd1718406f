package quiclb

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	key := make([]byte, KeyLen)
	tests := []struct {
		name  string
		cfg   Config
		field string // "" if valid
		msg   string
	}{
		{"zero value", Config{}, "", ""},
		{"max codepoint", Config{ConfigID: 6}, "", ""},
		{"codepoint 7", Config{ConfigID: 7}, "ConfigID", "quiclb: ConfigID 7: codepoint 7 is reserved for unroutable connection IDs; range 0–6"},
		{"codepoint -1", Config{ConfigID: -1}, "ConfigID", "quiclb: ConfigID -1: out of range 0–6"},
		{"server ID 16", Config{ServerIDLen: 16}, "ServerIDLen", "quiclb: ServerIDLen 16: out of range 1–15 octets"},
		{"server ID -1", Config{ServerIDLen: -1}, "ServerIDLen", ""},
		{"nonce 3", Config{NonceLen: 3}, "NonceLen", "quiclb: NonceLen 3: out of range 4–18 octets"},
		{"nonce 19", Config{NonceLen: 19}, "NonceLen", ""},
		{"sum 20", Config{ServerIDLen: 15, NonceLen: 5}, "NonceLen", "quiclb: NonceLen 5: ServerIDLen 15 + NonceLen 5 = 20 octets, over 19"},
		{"sum 19", Config{ServerIDLen: 15, NonceLen: 4, Key: key}, "", ""},
		{"short key", Config{Key: key[:15]}, "Key", `quiclb: Key "15 octets": an AES-128 key is 16 octets`},
		{"long key", Config{Key: make([]byte, 32)}, "Key", ""},
		{"empty key is plaintext", Config{Key: []byte{}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			_, derr := NewDecoder(tt.cfg)
			_, gerr := NewGenerator(GeneratorConfig{Config: tt.cfg, ServerID: mustID(t, "0102")})
			if tt.field == "" {
				if err != nil || derr != nil {
					t.Fatalf("Validate() = %v, NewDecoder: %v, want nil", err, derr)
				}
				return
			}
			for _, e := range []error{err, derr, gerr} {
				var ce *ConfigError
				if !errors.As(e, &ce) || ce.Field != tt.field {
					t.Fatalf("error = %v, want a ConfigError for %s", e, tt.field)
				}
				if !strings.HasPrefix(e.Error(), tt.msg) {
					t.Errorf("error = %q, want prefix %q", e, tt.msg)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	if got := c.ConnIDLen(); got != 8 {
		t.Errorf("ConnIDLen() = %d, want 8", got)
	}
	if got := c.Mode(); got != Plaintext {
		t.Errorf("Mode() = %v, want plaintext", got)
	}
	if got := (Config{Key: make([]byte, 16), ServerIDLen: 4, NonceLen: 12}).Mode(); got != SinglePass {
		t.Errorf("Mode() = %v, want single-pass", got)
	}
}

func mustID(t testing.TB, s string) ServerID {
	t.Helper()
	id, err := ParseServerID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustRouter(t testing.TB, d *Decoder, ids ServerIDs) *Router {
	t.Helper()
	r, err := NewRouter(RouterConfig{Decoder: d, ServerIDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestServerID(t *testing.T) {
	id := mustID(t, "0a:1b:2c")
	if id.Len() != 3 || id.String() != "0a1b2c" || !bytes.Equal(id.Bytes(), []byte{0x0a, 0x1b, 0x2c}) {
		t.Errorf("ParseServerID(0a:1b:2c) = %v (len %d)", id, id.Len())
	}
	for _, bad := range []string{"", "zz", "0", strings.Repeat("00", 16)} {
		if _, err := ParseServerID(bad); err == nil {
			t.Errorf("ParseServerID(%q) = nil error, want one", bad)
		}
	}
	// Length is part of the identity.
	if mustID(t, "00") == mustID(t, "0000") {
		t.Error("ServerID 00 == 0000")
	}
}

func TestGeneratorServerIDLength(t *testing.T) {
	_, err := NewGenerator(GeneratorConfig{Config: Config{ServerIDLen: 3}, ServerID: mustID(t, "0102")})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "ServerID" {
		t.Fatalf("NewGenerator(GeneratorConfig{Config: 3-octet config, ServerID: 2-octet ID}) = %v, want a ServerID ConfigError", err)
	}
}

func TestGeneratorRandError(t *testing.T) {
	_, err := NewGenerator(GeneratorConfig{Config: Config{Rand: bytes.NewReader(nil)}, ServerID: mustID(t, "0102")})
	if err == nil {
		t.Fatal("NewGenerator with an empty Rand = nil error")
	}
}

var modes = []struct {
	name string
	cfg  Config
}{
	{"plaintext", Config{ConfigID: 1, ServerIDLen: 2, NonceLen: 5}},
	{"single-pass", Config{ConfigID: 2, ServerIDLen: 4, NonceLen: 12, Key: []byte("0123456789abcdef")}},
	{"four-pass", Config{ConfigID: 3, ServerIDLen: 2, NonceLen: 5, Key: []byte("0123456789abcdef")}},
}

// Every mode: IDs are unique, decode to the server ID, and carry the
// codepoint; the low bits are random without EncodeLength.
func TestGeneratorRoundTrip(t *testing.T) {
	for _, m := range modes {
		for _, encLen := range []bool{false, true} {
			name := m.name
			if encLen {
				name += "/length"
			}
			t.Run(name, func(t *testing.T) {
				cfg := m.cfg
				cfg.EncodeLength = encLen
				id := mustID(t, strings.Repeat("a5", cfg.ServerIDLen))
				g, err := NewGenerator(GeneratorConfig{Config: cfg, ServerID: id})
				if err != nil {
					t.Fatal(err)
				}
				d, err := NewDecoder(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if d.Mode().String() != m.name {
					t.Errorf("Mode() = %v, want %s", d.Mode(), m.name)
				}
				seen := map[string]bool{}
				lows := map[byte]bool{}
				for i := range 2000 {
					cid, err := g.GenerateConnectionID()
					if err != nil {
						t.Fatal(err)
					}
					b := cid.Bytes()
					if len(b) != g.ConnectionIDLen() || len(b) != d.ConnIDLen() {
						t.Fatalf("ID %d: length %d, want %d", i, len(b), g.ConnectionIDLen())
					}
					if seen[string(b)] {
						t.Fatalf("ID %d: %x issued twice", i, b)
					}
					seen[string(b)] = true
					if int(b[0]>>5) != cfg.ConfigID {
						t.Fatalf("ID %x: codepoint %d, want %d", b, b[0]>>5, cfg.ConfigID)
					}
					lows[b[0]&0x1f] = true
					if got, ok := d.ServerID(b); !ok || got != id {
						t.Fatalf("ServerID(%x) = %v, %v, want %v", b, got, ok, id)
					}
				}
				if encLen && (len(lows) != 1 || !lows[byte(g.ConnectionIDLen()-1)]) {
					t.Errorf("encoded lengths %v, want only %d", lows, g.ConnectionIDLen()-1)
				}
				if !encLen && len(lows) < 16 {
					t.Errorf("only %d distinct random low bits in 2000 IDs", len(lows))
				}
			})
		}
	}
}

// Plaintext nonces are scrambled: consecutive IDs share no visible
// counter, yet stay unique.
func TestGeneratorPlaintextNoncesScrambled(t *testing.T) {
	cfg := Config{ServerIDLen: 1, NonceLen: 4, EncodeLength: true}
	g, err := NewGenerator(GeneratorConfig{Config: cfg, ServerID: mustID(t, "07")})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := g.GenerateConnectionID()
	b, _ := g.GenerateConnectionID()
	if bytes.Equal(a.Bytes()[2:5], b.Bytes()[2:5]) {
		t.Errorf("consecutive plaintext nonces %x and %x share their first three octets", a.Bytes()[2:], b.Bytes()[2:])
	}
}

// When the counter would come back to its start, the generator refuses
// rather than repeat an ID, and keeps refusing.
func TestGeneratorNonceExhausted(t *testing.T) {
	cfg := Config{NonceLen: 4, Key: []byte("0123456789abcdef")}
	start := []byte{0xff, 0xff, 0xff, 0xfe}
	cfg.Rand = bytes.NewReader(start)
	g, err := NewGenerator(GeneratorConfig{Config: cfg, ServerID: mustID(t, "0102")})
	if err != nil {
		t.Fatal(err)
	}
	g.used.Store(1<<32 - 2)
	d, _ := NewDecoder(cfg)
	var last []byte
	for i := range 2 {
		cid, err := g.GenerateConnectionID()
		if err != nil {
			t.Fatalf("ID %d of the last 2: %v", i, err)
		}
		last = cid.Bytes()
	}
	// The last nonce is start-1 modulo 2^32: it wrapped through zero.
	plain := make([]byte, 6)
	d.c.enc.decrypt(plain, last[1:])
	if want := []byte{1, 2, 0xff, 0xff, 0xff, 0xfd}; !bytes.Equal(plain, want) {
		t.Errorf("last plaintext = %x, want %x", plain, want)
	}
	for range 3 {
		if _, err := g.GenerateConnectionID(); !errors.Is(err, ErrNonceExhausted) {
			t.Fatalf("GenerateConnectionID() after exhaustion = %v, want ErrNonceExhausted", err)
		}
	}
}

func TestAddBE(t *testing.T) {
	tests := []struct {
		a    string
		x    uint64
		want string
	}{
		{"00000000", 1, "00000001"},
		{"000000ff", 1, "00000100"},
		{"ffffffff", 1, "00000000"},
		{"fffffffffffffffffe", 3, "000000000000000001"},
		{"01020304", 0x0102030405, "03050709"}, // modulo 2^32
	}
	for _, tt := range tests {
		a := unhex(t, tt.a)
		dst := make([]byte, len(a))
		addBE(dst, a, tt.x)
		if got := hex.EncodeToString(dst); got != tt.want {
			t.Errorf("addBE(%s, %#x) = %s, want %s", tt.a, tt.x, got, tt.want)
		}
	}
}

func TestGeneratorConcurrent(t *testing.T) {
	cfg := modes[2].cfg
	g, err := NewGenerator(GeneratorConfig{Config: cfg, ServerID: mustID(t, "0102")})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for range 500 {
				cid, err := g.GenerateConnectionID()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[string(cid.Bytes())] {
					t.Errorf("%x issued twice", cid.Bytes())
				}
				seen[string(cid.Bytes())] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestDecoderUnroutable(t *testing.T) {
	cfg := Config{ConfigID: 2, ServerIDLen: 3, NonceLen: 4, Key: unhex(t, vectorKey), EncodeLength: true}
	d, err := NewDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(GeneratorConfig{Config: cfg, ServerID: mustID(t, "010203")})
	if err != nil {
		t.Fatal(err)
	}
	cid, _ := g.GenerateConnectionID()
	good := cid.Bytes()
	with := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		dcid []byte
		ok   bool
	}{
		{"issued", good, true},
		{"trailing octets ignored", append(append([]byte(nil), good...), 0xee, 0xff), true},
		{"empty", nil, false},
		{"one short", good[:len(good)-1], false},
		{"other codepoint", with(func(b []byte) []byte { b[0] ^= 0x20; return b }), false},
		{"codepoint 7", with(func(b []byte) []byte { b[0] |= 0xe0; return b }), false},
		{"encoded length short", with(func(b []byte) []byte { b[0] = b[0]&0xe0 | 5; return b }), false},
		{"encoded length past dcid", with(func(b []byte) []byte { b[0] = b[0]&0xe0 | 19; return b }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := d.ServerID(tt.dcid)
			if ok != tt.ok {
				t.Fatalf("ServerID(%x) ok = %v, want %v", tt.dcid, ok, tt.ok)
			}
			if ok && id.String() != "010203" {
				t.Errorf("ServerID(%x) = %v, want 010203", tt.dcid, id)
			}
			if !ok && id != (ServerID{}) {
				t.Errorf("ServerID(%x) = %v with ok false, want the zero ID", tt.dcid, id)
			}
		})
	}
}

func TestDecoderBackend(t *testing.T) {
	cfg := Config{ServerIDLen: 1, NonceLen: 6, Key: unhex(t, vectorKey)}
	d, _ := NewDecoder(cfg)
	ids := ServerIDs{mustID(t, "01"): "a", mustID(t, "02"): "b"}
	for _, sid := range []string{"01", "02", "03"} {
		g, err := NewGenerator(GeneratorConfig{Config: cfg, ServerID: mustID(t, sid)})
		if err != nil {
			t.Fatal(err)
		}
		cid, _ := g.GenerateConnectionID()
		got, ok := d.Backend(cid.Bytes(), ids)
		want, wantOK := ids[mustID(t, sid)]
		if got != want || ok != wantOK {
			t.Errorf("Backend(ID of server %s) = %q, %v, want %q, %v", sid, got, ok, want, wantOK)
		}
	}
	if _, ok := d.Backend([]byte{0xe0, 1, 2, 3, 4, 5, 6, 7}, ids); ok {
		t.Error("Backend(codepoint 7) ok")
	}
}

func TestAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts: not in -short or -race")
	}
	ids := ServerIDs{}
	for _, m := range modes {
		id := mustID(t, strings.Repeat("a5", m.cfg.ServerIDLen))
		ids[id] = "backend"
		g, _ := NewGenerator(GeneratorConfig{Config: m.cfg, ServerID: id})
		d, _ := NewDecoder(m.cfg)
		cid, _ := g.GenerateConnectionID()
		b := cid.Bytes()
		if n := testing.AllocsPerRun(100, func() { d.Backend(b, ids) }); n != 0 {
			t.Errorf("%s: Backend allocates %v times", m.name, n)
		}
		if n := testing.AllocsPerRun(100, func() { g.GenerateConnectionID() }); n != 0 {
			t.Errorf("%s: GenerateConnectionID allocates %v times", m.name, n)
		}
	}
}
