package main

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/lbkit/lbkit/listener"
)

// h3QuicLbConfig is a file with Fleet.QuicLb and an https listener with
// HTTP/3 and one without; QUICLB is replaced by the QuicLb block.
const h3QuicLbConfig = `Fleet:
  QuicLb: QUICLB
  QuicStatelessResetKey: cmVzZXQga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXM=
  QuicTokenKey: dG9rZW4ga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXM=
BackendServers:
  - {ServerId: a, ServerIp: 127.0.0.1}
Listeners:
  - {ListenerProtocol: https, ListenerPort: 8443, BackendServerPort: 80, ServerCertificateId: demo, EnableHttp3: "on", TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3, HealthCheck: "off"}
  - {ListenerProtocol: https, ListenerPort: 9443, BackendServerPort: 80, ServerCertificateId: demo, HealthCheck: "off"}
`

// With -quic-lb-server-id, an https listener with EnableHttp3 issues
// connection IDs that the Fleet's QuicLb decodes to that server ID; one
// generator serves every plan of the process while the configuration
// stays; a changed configuration gets a new one; without HTTP/3 or the
// flag, none.
func TestHTTP3QuicLbPlan(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210"))
	block := "{ConfigId: 2, Key: " + key + "}"
	e := testEnv(t)
	var err error
	if e.h3lb, err = parseQuicLbServerID("0c03"); err != nil {
		t.Fatal(err)
	}
	plan := func(block string) *plan {
		t.Helper()
		f, err := Parse("t.yaml", ".", []byte(strings.Replace(h3QuicLbConfig, "QUICLB", block, 1)))
		if err != nil {
			t.Fatal(err)
		}
		p, err := planFile(f, e)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := plan(block)
	h3, h2 := p.listeners[0].cfg.HTTP, p.listeners[1].cfg.HTTP
	gen, ok := h3.QUICConnIDs.(*quiclb.Generator)
	if !ok {
		t.Fatalf("https listener with HTTP/3: QUICConnIDs = %T, want a *quiclb.Generator", h3.QUICConnIDs)
	}
	if h2.QUICConnIDs != nil || h2.QUICKeys != (listener.QUICKeys{}) {
		t.Errorf("https listener without HTTP/3: QUICConnIDs = %v, QUICKeys %v; want none", h2.QUICConnIDs, h2.QUICKeys)
	}
	if k := h3.QUICKeys; k.StatelessReset == nil || string(k.StatelessReset[:]) != "reset key of the fleet, 32 bytes" ||
		k.Token == nil || string(k.Token[:]) != "token key of the fleet, 32 bytes" {
		t.Errorf("https listener with HTTP/3: QUICKeys %v, want the Fleet's", k)
	}
	dec, err := quiclb.NewDecoder(quiclb.Config{ConfigID: 2, Key: []byte("fedcba9876543210")})
	if err != nil {
		t.Fatal(err)
	}
	cid, err := gen.GenerateConnectionID()
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := dec.ServerID(cid.Bytes()); !ok || id.String() != "0c03" {
		t.Errorf("connection ID %x decodes to %v, %v; want 0c03", cid.Bytes(), id, ok)
	}
	if again := plan(block).listeners[0].cfg.HTTP.QUICConnIDs; again != gen {
		t.Error("a second plan of the same configuration made another generator, which may issue the same IDs")
	}
	if other := plan("{ConfigId: 3, Key: " + key + "}").listeners[0].cfg.HTTP.QUICConnIDs; other == gen || other == nil {
		t.Errorf("after ConfigId changed: generator %v, want a new one", other)
	}
	e.h3lb = nil
	if none := plan(block).listeners[0].cfg.HTTP.QUICConnIDs; none != nil {
		t.Errorf("without -quic-lb-server-id: QUICConnIDs = %v, want nil", none)
	}
}

func TestHTTP3QuicLbErrors(t *testing.T) {
	if _, err := parseQuicLbServerID("zz"); err == nil || !strings.HasPrefix(err.Error(), `-quic-lb-server-id "zz": `) {
		t.Errorf("parseQuicLbServerID(zz) = %v, want the flag named", err)
	}
	for _, tc := range []struct{ name, id, block, resetKey, want string }{
		{"no QuicLb", "0c03", "", "", "t.yaml: Fleet.QuicLb: required by -quic-lb-server-id 0c03: the configuration this replica's HTTP/3 connection IDs are issued under"},
		{"length", "0c0304", "{ServerIdLength: 2}", "", "t.yaml:2: Fleet.QuicLb.ServerIdLength: -quic-lb-server-id 0c0304: length 3 octets, want ServerIDLen 2"},
		{"reset key", "", "{}", "AAAA", "t.yaml:3: Fleet.QuicStatelessResetKey: 3 bytes, want 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testEnv(t)
			var err error
			if e.h3lb, err = parseQuicLbServerID(tc.id); err != nil || tc.id != "" && e.h3lb == nil {
				t.Fatal(err)
			}
			data := strings.Replace(h3QuicLbConfig, "QUICLB", tc.block, 1)
			if tc.resetKey != "" {
				data = strings.Replace(data, "cmVzZXQga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXM=", tc.resetKey, 1)
			}
			if tc.block == "" {
				data = strings.Replace(data, "  QuicLb: \n", "", 1)
			}
			f, err := Parse("t.yaml", ".", []byte(data))
			if err == nil {
				_, err = planFile(f, e)
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// A listener with HTTP/3 restarts when the Fleet's QUIC keys change (it
// takes them at its start); one without does not mind.
func TestHTTP3QuicKeysRestart(t *testing.T) {
	parse := func(data string) *File {
		t.Helper()
		f, err := Parse("t.yaml", ".", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	old := parse(strings.Replace(h3QuicLbConfig, "QUICLB", "{}", 1))
	changed := parse(strings.Replace(strings.Replace(h3QuicLbConfig, "QUICLB", "{}", 1), "cmVzZXQga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXM=", "cmVzZXQga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXQ=", 1))
	for i, want := range []bool{false, true} {
		l := old.Listeners[i]
		if got := sameFleet(old, changed, l); got != want {
			t.Errorf("sameFleet(QuicStatelessResetKey changed, Listeners[%d] EnableHttp3 %q) = %v, want %v", i, l.EnableHttp3, got, want)
		}
		if !sameFleet(old, old, l) {
			t.Errorf("sameFleet(unchanged, Listeners[%d]) = false", i)
		}
	}
}
