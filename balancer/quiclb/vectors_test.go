package quiclb

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The test vectors of draft-ietf-quic-load-balancers, Appendix B
// ("Load Balancer Test Vectors"; B.1 Unencrypted CIDs, B.2 Encrypted
// CIDs), as published in drafts 19–21, plus the worked example of Section
// 4.3.2.4 ("Encryption Example"). In all of them the server encodes the
// CID length.
//
// Two rows are printed inexactly in the draft and are transcribed here as
// their bytes must be:
//
//   - B.1 row 2 prints its octets without zero padding: nonce "3487d970b"
//     is 34 87 d9 70 0b (the only 5-octet reading), and CID
//     "20a350d28b4203487d970b" is first octet 0x2a (0x20 | 10) then server
//     ID and nonce.
//   - B.2 row 4 lists cr_bits 3 but a CID whose first octet is 0x12
//     (codepoint 0). The first octet is not encrypted, so the row is
//     checked both ways: as printed under codepoint 0, and under
//     codepoint 3 with first octet 0x72 and the same ciphertext.
var draftVectors = []struct {
	name  string
	cr    int
	key   string
	sid   string
	nonce string
	cid   string
	mode  Mode
}{
	{"B.1/1", 0, "", "c4605e", "4504cc4f", "07c4605e4504cc4f", Plaintext},
	{"B.1/2", 1, "", "350d28b420", "3487d9700b", "2a350d28b4203487d9700b", Plaintext},
	{"B.2/1", 0, vectorKey, "ed793a", "ee080dbf", "0720b1d07b359d3c", FourPass},
	{"B.2/2 sid longer than nonce", 1, vectorKey, "ed793a51d49b8f5fab65", "ee080dbf48", "2fcc381bc74cb4fbad2823a3d1f8fed2", FourPass},
	{"B.2/3 single pass", 2, vectorKey, "ed793a51d49b8f5f", "ee080dbf48c0d1e5", "504dd2d05a7b0de9b2b9907afb5ecf8cc3", SinglePass},
	{"B.2/4 as printed", 0, vectorKey, "ed793a51d49b8f5fab", "ee080dbf48c0d1e55d", "125779c9cc86beb3a3a4a3ca96fce4bfe0cdbc", FourPass},
	{"B.2/4 cr_bits 3", 3, vectorKey, "ed793a51d49b8f5fab", "ee080dbf48c0d1e55d", "725779c9cc86beb3a3a4a3ca96fce4bfe0cdbc", FourPass},
	{"4.3.2.4 example", 0, "fdf726a9893ec05c0632d3956680baf0", "31441a", "9c69c275", "0767947d29be054a", FourPass},
}

const vectorKey = "8f95f09245765f80256934e50c66207f"

func vectorConfig(t testing.TB, cr int, key, sid, nonce string) Config {
	return Config{
		ConfigID:     cr,
		ServerIDLen:  len(sid) / 2,
		NonceLen:     len(nonce) / 2,
		Key:          unhex(t, key),
		EncodeLength: true,
	}
}

func TestDraftVectors(t *testing.T) {
	for _, tt := range draftVectors {
		t.Run(tt.name, func(t *testing.T) {
			cfg := vectorConfig(t, tt.cr, tt.key, tt.sid, tt.nonce)
			sid, nonce, want := unhex(t, tt.sid), unhex(t, tt.nonce), unhex(t, tt.cid)
			if got := cfg.Mode(); got != tt.mode {
				t.Fatalf("Mode() = %v, want %v", got, tt.mode)
			}

			// Server side: a Generator whose nonce counter starts at the
			// vector's nonce issues the vector's CID first.
			id, err := MakeServerID(sid)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Rand = bytes.NewReader(append(append([]byte(nil), nonce...), make([]byte, KeyLen)...))
			g, err := NewGenerator(GeneratorConfig{Config: cfg, ServerID: id})
			if err != nil {
				t.Fatal(err)
			}
			g.mask = nil // plaintext: use the nonce as given, not scrambled
			cid, err := g.GenerateConnectionID()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cid.Bytes(), want) {
				t.Errorf("GenerateConnectionID() = %x, want %x", cid.Bytes(), want)
			}
			if g.ConnectionIDLen() != len(want) {
				t.Errorf("ConnectionIDLen() = %d, want %d", g.ConnectionIDLen(), len(want))
			}

			// Load balancer side.
			d, err := NewDecoder(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := d.ServerID(want)
			if !ok || !bytes.Equal(got.Bytes(), sid) {
				t.Errorf("ServerID(%x) = %v, %v, want %x, true", want, got, ok, sid)
			}

			// The full decryption recovers the nonce too.
			if d.c.enc != nil {
				plain := make([]byte, d.c.plainLen)
				d.c.enc.decrypt(plain, want[1:])
				if wantPlain := append(sid, nonce...); !bytes.Equal(plain, wantPlain) {
					t.Errorf("decrypt(%x) = %x, want %x", want[1:], plain, wantPlain)
				}
			}
		})
	}
}

// The intermediate values of the draft's Section 4.3.2.4 example, pass by
// pass, pin the expand layout (input, zero padding, length, pass).
func TestFeistelExampleSteps(t *testing.T) {
	p, err := newPRP(unhex(t, "fdf726a9893ec05c0632d3956680baf0"), 7)
	if err != nil {
		t.Fatal(err)
	}
	var l, r [maxHalf]byte
	h := p.split(&l, &r, unhex(t, "31441a9c69c275"))
	steps := []struct {
		name string
		got  []byte
		want string
		pass func()
	}{
		{"left_0", l[:h], "31441a90", nil},
		{"right_0", r[:h], "0c69c275", nil},
		{"right_1", r[:h], "0e3c1ff9", func() { p.round(new(aesBuf), 1, l[:h], r[:h]); p.clearRight(&r) }},
		{"left_1", l[:h], "d4a04850", func() { p.round(new(aesBuf), 2, r[:h], l[:h]); p.clearLeft(&l, h) }},
		{"right_2", r[:h], "09be054a", func() { p.round(new(aesBuf), 3, l[:h], r[:h]); p.clearRight(&r) }},
		{"left_2", l[:h], "67947d20", func() { p.round(new(aesBuf), 4, r[:h], l[:h]); p.clearLeft(&l, h) }},
	}
	for _, s := range steps {
		if s.pass != nil {
			s.pass()
		}
		if got := hex.EncodeToString(s.got); got != s.want {
			t.Errorf("%s = %s, want %s", s.name, got, s.want)
		}
	}
}
