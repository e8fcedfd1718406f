package listener

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// rfc9001Initial is the start of the client Initial of RFC 9001 Appendix
// A.2: version 1, DCID 8394c8f03e515708, empty SCID, token length 0,
// length 0x449e, then the protected packet number.
const rfc9001Initial = "c000000001088394c8f03e5157080000449e7b9aec34"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseQUICDestConnID(t *testing.T) {
	long := mustHex(t, rfc9001Initial)
	tests := []struct {
		name     string
		pkt      string
		shortLen int
		want     string // hex; "-" for not ok
	}{
		{"rfc 9001 initial", rfc9001Initial, 8, "8394c8f03e515708"},
		{"long header ignores shortLen", rfc9001Initial, 1, "8394c8f03e515708"},
		{"long header, scid", "c0000000010401020304030a0b0c", 8, "01020304"},
		{"long header, empty dcid", "c0000000010000", 8, ""},
		{"long header, 255-byte dcid", "c0ff00ff00ff" + hexRepeat("ab", 255) + "00", 8, hexRepeat("ab", 255)},
		{"version negotiation", "80000000000401020304040a0b0c0d00000001", 8, "01020304"},
		{"long header, scid cut", "c0000000010401020304030a0b", 8, "-"},
		{"long header, no scid length", "c00000000104010203", 8, "-"},
		{"long header, dcid cut", "c000000001080102", 8, "-"},
		{"long header, no dcid length", "c000000001", 8, "-"},
		{"one byte", "c0", 8, "-"},
		{"short header 8", "41" + "1122334455667788" + "aabbcc", 8, "1122334455667788"},
		{"short header 4", "4111223344aabb", 4, "11223344"},
		{"short header exact", "4111223344", 4, "11223344"},
		{"short header cut", "41112233", 4, "-"},
		{"short header, length 0", "4111", 0, "-"},
		{"short header, greased fixed bit", "01aabbccdd", 4, "aabbccdd"},
		{"empty", "", 8, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := mustHex(t, tt.pkt)
			dcid, ok := parseQUICDestConnID(pkt, tt.shortLen)
			got := "-"
			if ok {
				got = hex.EncodeToString(dcid)
			}
			if got != tt.want {
				t.Fatalf("parseQUICDestConnID(%s, %d) = %s, want %s", tt.pkt, tt.shortLen, got, tt.want)
			}
			if ok && cap(dcid) != len(dcid) {
				t.Errorf("dcid has capacity %d beyond its length %d: appending would overwrite the packet", cap(dcid), len(dcid))
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { parseQUICDestConnID(long, 8) }); n != 0 {
		t.Errorf("parseQUICDestConnID allocates %v times per call, want 0", n)
	}
}

func hexRepeat(b string, n int) string {
	return string(bytes.Repeat([]byte(b), n))
}

func FuzzParseQUICHeader(f *testing.F) {
	for _, s := range []string{
		rfc9001Initial,
		"c0000000010401020304030a0b0c",
		"80000000000401020304040a0b0c0d00000001",
		"411122334455667788aabbcc",
		"4111223344aabb",
		"c0ff00ff00ff",
		"",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b, 8)
		f.Add(b, 4)
	}
	f.Fuzz(func(t *testing.T, b []byte, shortLen int) {
		dcid, ok := parseQUICDestConnID(b, shortLen)
		if !ok {
			if dcid != nil {
				t.Fatalf("not ok but dcid %x", dcid)
			}
			return
		}
		if len(b) == 0 {
			t.Fatal("ok on an empty packet")
		}
		var at int
		if b[0]&0x80 != 0 {
			at = 6
			if len(b) < 7 || len(dcid) != int(b[5]) || len(b) <= at+len(dcid) || len(b) < at+len(dcid)+1+int(b[at+len(dcid)]) {
				t.Fatalf("long header %x: dcid %x out of bounds", b, dcid)
			}
		} else {
			at = 1
			if len(dcid) != shortLen {
				t.Fatalf("short header: dcid length %d, want %d", len(dcid), shortLen)
			}
		}
		if at+len(dcid) > len(b) || !bytes.Equal(dcid, b[at:at+len(dcid)]) {
			t.Fatalf("%x: dcid %x is not b[%d:%d]", b, dcid, at, at+len(dcid))
		}
		if len(dcid) > 0 && &dcid[0] != &b[at] {
			t.Fatal("dcid does not alias the packet")
		}
	})
}
