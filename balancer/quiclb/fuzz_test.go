package quiclb

import (
	"bytes"
	"testing"
)

// fuzzConfig maps arbitrary fuzz inputs onto a valid configuration.
func fuzzConfig(cr, sidLen, nonceLen uint8, key []byte, encLen bool) Config {
	cfg := Config{
		ConfigID:     int(cr % 7),
		ServerIDLen:  1 + int(sidLen%MaxServerIDLen),
		EncodeLength: encLen,
	}
	cfg.NonceLen = MinNonceLen + int(nonceLen)%(MaxPlaintextLen-cfg.ServerIDLen-MinNonceLen+1)
	if len(key) >= KeyLen {
		cfg.Key = key[:KeyLen]
	}
	return cfg
}

func fill(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, b)
	return out
}

// Any configuration, server ID and nonce: the decoder returns the server
// ID the encoder put in, and full decryption returns server ID and nonce.
func FuzzRoundTrip(f *testing.F) {
	for _, v := range draftVectors {
		f.Add(uint8(v.cr), uint8(len(v.sid)/2-1), uint8(len(v.nonce)/2-MinNonceLen), unhexF(v.key), true, unhexF(v.sid), unhexF(v.nonce), uint8(0))
	}
	f.Add(uint8(6), uint8(14), uint8(0), []byte("0123456789abcdef"), false, []byte("fifteen-octets!"), []byte("nonc"), uint8(31))
	f.Fuzz(func(t *testing.T, cr, sidLen, nonceLen uint8, key []byte, encLen bool, sidIn, nonceIn []byte, low uint8) {
		cfg := fuzzConfig(cr, sidLen, nonceLen, key, encLen)
		c, err := newCodec(cfg)
		if err != nil {
			t.Fatalf("newCodec(%+v): %v", cfg, err)
		}
		sid, nonce := fill(sidIn, cfg.ServerIDLen), fill(nonceIn, cfg.NonceLen)
		cid := make([]byte, c.cidLen())
		c.encode(cid, sid, nonce, low)
		d := &Decoder{c: c}
		got, ok := d.ServerID(cid)
		if !ok || !bytes.Equal(got.Bytes(), sid) {
			t.Fatalf("config %+v: ServerID(%x) = %v, %v, want %x", cfg, cid, got, ok, sid)
		}
		if c.enc != nil {
			plain := make([]byte, c.plainLen)
			c.enc.decrypt(plain, cid[1:])
			if want := append(sid, nonce...); !bytes.Equal(plain, want) {
				t.Fatalf("config %+v: decrypt(%x) = %x, want %x", cfg, cid[1:], plain, want)
			}
		}
	})
}

func unhexF(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		b[i] = nibble(s[2*i])<<4 | nibble(s[2*i+1])
	}
	return b
}

func nibble(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

// Arbitrary bytes never panic the decoder, and whatever it accepts has
// the configuration's codepoint and length.
func FuzzDecode(f *testing.F) {
	for _, v := range draftVectors {
		f.Add(uint8(v.cr), uint8(len(v.sid)/2-1), uint8(len(v.nonce)/2-MinNonceLen), unhexF(v.key), true, unhexF(v.cid))
	}
	f.Add(uint8(0), uint8(1), uint8(0), []byte(nil), false, []byte{})
	f.Add(uint8(0), uint8(1), uint8(0), []byte(nil), true, []byte{0xff})
	f.Fuzz(func(t *testing.T, cr, sidLen, nonceLen uint8, key []byte, encLen bool, dcid []byte) {
		cfg := fuzzConfig(cr, sidLen, nonceLen, key, encLen)
		d, err := NewDecoder(cfg)
		if err != nil {
			t.Fatalf("NewDecoder(%+v): %v", cfg, err)
		}
		id, ok := d.ServerID(dcid)
		if !ok {
			return
		}
		if id.Len() != cfg.ServerIDLen || len(dcid) < d.ConnIDLen() || int(dcid[0]>>5) != cfg.ConfigID {
			t.Fatalf("config %+v: ServerID(%x) = %v accepted", cfg, dcid, id)
		}
	})
}
