package tlspolicy_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// probeSuite sends a hand-built ClientHello that offers only suite, at TLS
// 1.2 or (tls13) TLS 1.3, and returns the cipher suite of the server's
// ServerHello. It exists for the cells a crypto/tls client cannot express:
// suites crypto/tls does not have, and one TLS 1.3 suite alone. The
// handshake is not completed; the ServerHello is in the clear.
func probeSuite(addr string, suite uint16, tls13 bool) (uint16, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	hello, err := clientHello(suite, tls13)
	if err != nil {
		return 0, err
	}
	if _, err := c.Write(hello); err != nil {
		return 0, err
	}
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return 0, fmt.Errorf("no answer: %w", err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return 0, err
	}
	switch {
	case hdr[0] == 21 && len(body) == 2: // alert
		return 0, fmt.Errorf("server sent alert %d", body[1])
	case hdr[0] != 22 || len(body) < 4 || body[0] != 2:
		return 0, fmt.Errorf("unexpected record type %d", hdr[0])
	}
	// ServerHello: type(1) len(3) version(2) random(32) session_id<1> cipher_suite(2)
	p := body[4+2+32:]
	if len(p) < 1 || len(p) < 1+int(p[0])+2 {
		return 0, fmt.Errorf("short ServerHello")
	}
	p = p[1+int(p[0]):]
	return binary.BigEndian.Uint16(p), nil
}

func clientHello(suite uint16, tls13 bool) ([]byte, error) {
	u16 := func(b []byte, v int) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }
	ext := func(b []byte, typ int, data []byte) []byte {
		b = u16(b, typ)
		b = u16(b, len(data))
		return append(b, data...)
	}

	var exts []byte
	exts = ext(exts, 0x000a, []byte{0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18}) // x25519, P-256, P-384
	exts = ext(exts, 0x000b, []byte{1, 0})                                     // uncompressed points
	sigAlgs := []uint16{0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601}
	var sa []byte
	sa = u16(sa, 2*len(sigAlgs))
	for _, s := range sigAlgs {
		sa = u16(sa, int(s))
	}
	exts = ext(exts, 0x000d, sa)
	if tls13 {
		exts = ext(exts, 0x002b, []byte{2, 0x03, 0x04}) // supported_versions: TLS 1.3
		key, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		var ks []byte
		ks = u16(ks, 4+32)
		ks = u16(ks, 0x001d)
		ks = u16(ks, 32)
		ks = append(ks, key.PublicKey().Bytes()...)
		exts = ext(exts, 0x0033, ks)
	}

	body := u16(nil, tls.VersionTLS12)
	random := make([]byte, 32+32)
	if _, err := rand.Read(random); err != nil {
		return nil, err
	}
	body = append(body, random[:32]...)
	body = append(body, 32)
	body = append(body, random[32:]...)
	body = u16(body, 2)
	body = u16(body, int(suite))
	body = append(body, 1, 0) // null compression
	body = u16(body, len(exts))
	body = append(body, exts...)

	msg := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	msg = append(msg, body...)
	rec := []byte{22, 3, 1}
	rec = u16(rec, len(msg))
	return append(rec, msg...), nil
}
