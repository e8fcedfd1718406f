package main

import "testing"

// Http3MaxHandshakes is for https listeners with EnableHttp3 on, in
// the profile's range; each problem is reported at its own line.
func TestHttp3MaxHandshakesErrors(t *testing.T) {
	wantConfigErrors(t, `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    Http3MaxHandshakes: 10
  - ListenerProtocol: https
    ListenerPort: 8443
    BackendServerPort: 80
    ServerCertificateId: demo
    Http3MaxHandshakes: 10
  - ListenerProtocol: https
    ListenerPort: 8444
    BackendServerPort: 80
    ServerCertificateId: demo
    EnableHttp3: "off"
    Http3MaxHandshakes: 10
  - ListenerProtocol: https
    ListenerPort: 8445
    BackendServerPort: 80
    ServerCertificateId: demo
    TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3
    EnableHttp3: "on"
    Http3MaxHandshakes: 0
  - ListenerProtocol: https
    ListenerPort: 8446
    BackendServerPort: 80
    ServerCertificateId: demo
    TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3
    EnableHttp3: "on"
    Http3MaxHandshakes: 100001
`, []string{
		"t.yaml:16: Listeners[0].Http3MaxHandshakes: only for https listeners",
		"t.yaml:21: Listeners[1].Http3MaxHandshakes: 10: needs EnableHttp3 on",
		"t.yaml:27: Listeners[2].Http3MaxHandshakes: 10: needs EnableHttp3 on",
		"t.yaml:34: Listeners[3].Http3MaxHandshakes: 0 out of range 1–100000 (handshakes)",
		"t.yaml:41: Listeners[4].Http3MaxHandshakes: 100001 out of range 1–100000 (handshakes)",
	})
}

// Http3MaxHandshakes reaches the listener's MaxQUICHandshakes (omitted,
// 0: the library's default), and a change replaces the listener, which
// cannot change it live.
func TestHttp3MaxHandshakes(t *testing.T) {
	const h3 = `ListenerProtocol: https, BackendServerPort: 80, ServerCertificateId: demo, EnableHttp3: "on", TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3`
	f, p := mustPlan(t, "h.yaml", goodBase+`  - {ListenerPort: 8443, Http3MaxHandshakes: 64, `+h3+`}
  - {ListenerPort: 8444, `+h3+`}
`)
	for i, want := range []int{64, 0} {
		if got := p.listeners[i].cfg.HTTP.MaxQUICHandshakes; got != want {
			t.Errorf("Listeners[%d]: MaxQUICHandshakes = %d, want %d", i, got, want)
		}
	}
	changed := f.Listeners[0]
	changed.Http3MaxHandshakes = 100
	if sameHard(f.Listeners[0], changed) {
		t.Error("a new Http3MaxHandshakes counts as a live change, want a listener restart")
	}
}
