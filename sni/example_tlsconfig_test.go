package sni_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"

	"github.com/lbkit/lbkit/sni"
	"github.com/lbkit/lbkit/tlspolicy"
)

// Your own HTTPS server with lbkit's TLS policy and certificate selection:
// the policy gives the tls.Config, the selector its GetCertificate.
func Example_tlsConfig() {
	def, shop := mustCert("default.test"), mustCert("shop.example.com")
	sel, _ := sni.NewSelector(sni.SelectorConfig{Default: def})
	if err := sel.Set("shop.example.com", shop); err != nil {
		fmt.Println(err)
		return
	}
	policy, _ := tlspolicy.Lookup(tlspolicy.Policy12) // TLS 1.2 only
	cfg := policy.Config()
	cfg.GetCertificate = sel.GetCertificate

	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "SNI %q over %s", r.TLS.ServerName, tls.VersionName(r.TLS.Version))
	})}
	go srv.Serve(ln)
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(def.Leaf)
	roots.AddCert(shop.Leaf)
	// A name no domain matches gets the default certificate.
	for _, name := range []string{"shop.example.com", "default.test"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name}}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		fmt.Println(resp.TLS.PeerCertificates[0].Subject.CommonName, "|", string(body))
	}
	// Output:
	// shop.example.com | SNI "shop.example.com" over TLS 1.2
	// default.test | SNI "default.test" over TLS 1.2
}
