package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	s := newSticky(t, Config{})
	for _, id := range []string{"a", "b", "10.0.0.3:8080"} {
		tok := s.Encode(id)
		if len(tok) != TokenLen {
			t.Errorf("len(Encode(%q)) = %d, want %d", id, len(tok), TokenLen)
		}
		if len(id) > 1 && strings.Contains(tok, id) || strings.Contains(tok, "10.0.0.3") {
			t.Errorf("Encode(%q) = %q reveals the ID", id, tok)
		}
		if got, ok := s.Decode(tok); !ok || got != id {
			t.Errorf("Decode(Encode(%q)) = %q, %v; want %q, true", id, got, ok, id)
		}
	}
}

// TestTokenMAC checks the wire format against crypto/hmac directly.
func TestTokenMAC(t *testing.T) {
	s := newSticky(t, Config{})
	tok := s.EncodeAt("a", t0)
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) != rawLen {
		t.Fatalf("token %q: %v, %d bytes", tok, err, len(raw))
	}
	mac := func(key []byte, label string, msg []byte) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(label))
		sub := h.Sum(nil)
		h = hmac.New(sha256.New, sub)
		h.Write(msg)
		return h.Sum(nil)
	}
	if raw[0] != tokenVersion {
		t.Errorf("version = %d", raw[0])
	}
	if got := int64(raw[1])<<24 | int64(raw[2])<<16 | int64(raw[3])<<8 | int64(raw[4]); got != t0.Unix() {
		t.Errorf("issued = %d, want %d", got, t0.Unix())
	}
	if want := mac(testKey, "lbkit/session tag v1", []byte("a"))[:tagLen]; !hmac.Equal(raw[5:bodyLen], want) {
		t.Errorf("tag = %x, want %x", raw[5:bodyLen], want)
	}
	if want := mac(testKey, "lbkit/session mac v1", raw[:bodyLen])[:macLen]; !hmac.Equal(raw[bodyLen:], want) {
		t.Errorf("mac = %x, want %x", raw[bodyLen:], want)
	}
}

func TestDecodeTampered(t *testing.T) {
	s := newSticky(t, Config{})
	good := s.EncodeAt("a", t0)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	enc := base64.RawURLEncoding.EncodeToString
	var bad []string
	for i := range len(raw) * 8 { // every bit of the token
		r := []byte(string(raw))
		r[i/8] ^= 1 << (i % 8)
		bad = append(bad, enc(r))
	}
	for i := range len(good) { // every character replaced, in and out of the alphabet
		for _, c := range []byte{'A', 'z', '-', '_', '=', '+', '/', '\n', 0, 0xff} {
			if good[i] != c {
				bad = append(bad, good[:i]+string(c)+good[i+1:])
			}
		}
	}
	for n := range len(good) { // every truncation
		bad = append(bad, good[:n])
	}
	other := newSticky(t, Config{Key: otherKey})
	bOnly := newSticky(t, Config{Backends: []string{"b"}})
	rawB, _ := base64.RawURLEncoding.DecodeString(s.EncodeAt("b", t0))
	spliced := append(append([]byte{}, rawB[:bodyLen]...), raw[bodyLen:]...) // b's tag, a's MAC
	bad = append(bad,
		"", "x", good+"A", good+"=", " "+good[1:], strings.Repeat("A", TokenLen), strings.Repeat("_", TokenLen),
		other.EncodeAt("a", t0),   // another key
		bOnly.EncodeAt("zzz", t0), // a backend not in the set
		enc(spliced),              // another backend's tag under this token's MAC
		"\""+good[1:TokenLen-1]+"\"",
	)
	for _, tok := range bad {
		if id, ok := s.DecodeAt(tok, t0); ok {
			t.Errorf("DecodeAt(%q) = %q, true; want no session", tok, id)
		}
	}
	// a's valid token is not accepted by a Sticky that does not know a.
	if id, ok := bOnly.DecodeAt(good, t0); ok {
		t.Errorf("DecodeAt(a's token) with set {b} = %q, true; want no session", id)
	}
}

func TestKeyRotation(t *testing.T) {
	oldS := newSticky(t, Config{Key: otherKey})
	tok := oldS.EncodeAt("a", t0)
	s := newSticky(t, Config{Key: testKey, PreviousKey: otherKey})
	sess, ok := s.decode(s.tab.Load(), tok, t0.Unix())
	if !ok || sess.ID != "a" || !sess.stale {
		t.Fatalf("decode(previous-key token) = %+v, %v; want a, stale", sess, ok)
	}
	if _, ok := newSticky(t, Config{Key: testKey}).DecodeAt(tok, t0); ok {
		t.Error("token under a forgotten key accepted")
	}
	// SetKeys(next, current) rotates live.
	if err := oldS.SetKeys(testKey, otherKey); err != nil {
		t.Fatal(err)
	}
	if id, ok := oldS.DecodeAt(tok, t0); !ok || id != "a" {
		t.Errorf("after SetKeys: DecodeAt(old token) = %q, %v; want a, true", id, ok)
	}
	if got, want := oldS.EncodeAt("a", t0), s.EncodeAt("a", t0); got != want {
		t.Errorf("after SetKeys: EncodeAt = %q, want %q (new key)", got, want)
	}
	if err := oldS.SetKeys(testKey, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := oldS.DecodeAt(tok, t0); ok {
		t.Error("after dropping the previous key its token is still accepted")
	}
	var ce *ConfigError
	if err := oldS.SetKeys([]byte("tiny-key"), nil); !errors.As(err, &ce) || ce.Field != "Key" || strings.Contains(err.Error(), "tiny") {
		t.Errorf("SetKeys(short) = %v, want *ConfigError for Key not echoing it", err)
	}
	if err := oldS.SetKeys(testKey, []byte("short")); !errors.As(err, &ce) || ce.Field != "PreviousKey" {
		t.Errorf("SetKeys(_, short) = %v, want *ConfigError for PreviousKey", err)
	}
	if err := oldS.SetKeys(nil, nil); !errors.As(err, &ce) || ce.Field != "Key" {
		t.Errorf("SetKeys(nil) = %v, want *ConfigError for Key", err)
	}
}

func TestDecodeExpiry(t *testing.T) {
	c := &clock{t: t0}
	s := newSticky(t, Config{CookieTimeout: 100 * time.Second, Now: c.Now})
	tok := s.Encode("a")
	for _, tc := range []struct {
		name string
		at   time.Duration
		ok   bool
	}{
		{"fresh", 0, true},
		{"just before timeout", 99 * time.Second, true},
		{"at timeout", 100 * time.Second, false},
		{"long after", 48 * time.Hour, false},
		{"clock skew within a minute", -60 * time.Second, true},
		{"issued far in the future", -61 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := s.DecodeAt(tok, t0.Add(tc.at)); ok != tc.ok {
				t.Errorf("DecodeAt(token, t0%+v) ok = %v, want %v", tc.at, ok, tc.ok)
			}
		})
	}
	// Rewrite mode does not check the age.
	r := newSticky(t, Config{Mode: Rewrite, CookieName: "JSESSIONID"})
	if _, ok := r.DecodeAt(r.EncodeAt("a", t0), t0.Add(1000*time.Hour)); !ok {
		t.Error("Rewrite: old token refused, want accepted")
	}
}

func TestSetBackends(t *testing.T) {
	s := newSticky(t, Config{Backends: []string{"a"}})
	tokB := s.EncodeAt("b", t0) // not yet a member: still gets a token
	if _, ok := s.DecodeAt(tokB, t0); ok {
		t.Error("token of unknown backend b accepted")
	}
	if err := s.SetBackends("a", "b", "b"); err != nil {
		t.Fatal(err)
	}
	if id, ok := s.DecodeAt(tokB, t0); !ok || id != "b" {
		t.Errorf("after SetBackends: DecodeAt(b) = %q, %v", id, ok)
	}
	tokA := s.EncodeAt("a", t0)
	if err := s.SetBackends("b"); err != nil {
		t.Fatal(err)
	}
	if id, ok := s.DecodeAt(tokA, t0); ok {
		t.Errorf("removed backend: DecodeAt(a) = %q, true", id)
	}
	var ce *ConfigError
	if err := s.SetBackends("b", ""); !errors.As(err, &ce) || ce.Field != "Backends" {
		t.Errorf("SetBackends with empty ID = %v, want *ConfigError", err)
	}
	if id, ok := s.DecodeAt(tokB, t0); !ok || id != "b" {
		t.Errorf("failed SetBackends changed the set: DecodeAt(b) = %q, %v", id, ok)
	}
}

func TestRandomKey(t *testing.T) {
	s1, err := New(Config{Backends: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := New(Config{Backends: []string{"a"}})
	tok := s1.Encode("a")
	if id, ok := s1.Decode(tok); !ok || id != "a" {
		t.Errorf("random key: Decode = %q, %v", id, ok)
	}
	if _, ok := s2.Decode(tok); ok {
		t.Error("a second random-key Sticky accepted the first one's token")
	}
}
