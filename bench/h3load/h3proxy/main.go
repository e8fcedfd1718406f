// Command h3proxy is the plain-Go baseline of bench/run.sh's h3 suite: a
// net/http/httputil.ReverseProxy, tuned as bench/cmd/httputilproxy is,
// served over HTTPS (HTTP/1.1 and HTTP/2, TCP) and HTTP/3 (quic-go's
// http3.Server, UDP) on the same port, round-robining over the backends
// given. It lives in the h3load module so that it runs the library's
// quic-go: its figure is what HTTP/3 costs with quic-go alone.
//
//	h3proxy -listen 127.0.0.1:19645 -cert cert.pem -key key.pem -backends 127.0.0.1:18001,127.0.0.1:18002
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19645", "listen `address`, TCP and UDP")
	backends := flag.String("backends", "127.0.0.1:18001", "comma-separated backend `host:port` list")
	certFile := flag.String("cert", "", "certificate PEM `file`")
	keyFile := flag.String("key", "", "private key PEM `file` for -cert")
	flag.Parse()
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatal("h3proxy: ", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal("h3proxy: ", err)
	}
	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		log.Fatal("h3proxy: ", err)
	}
	s := newServers(proxy(strings.Split(*backends, ",")), cert)
	errc := make(chan error, 2)
	go func() { errc <- s.tcp.ServeTLS(ln, "", "") }()
	go func() { errc <- s.udp.Serve(pc) }()
	log.Fatal("h3proxy: ", <-errc)
}

// proxy round-robins over backends (host:port) with one shared Transport.
func proxy(backends []string) http.Handler {
	var targets []*url.URL
	for _, b := range backends {
		targets = append(targets, &url.URL{Scheme: "http", Host: b})
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	var next atomic.Uint64
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(targets[next.Add(1)%uint64(len(targets))])
			r.Out.Host = r.In.Host
		},
		Transport: tr,
	}
}

// servers are the TCP (HTTP/1.1, HTTP/2) and UDP (HTTP/3) servers of one
// handler and certificate.
type servers struct {
	tcp *http.Server
	udp *http3.Server
}

func newServers(h http.Handler, cert tls.Certificate) *servers {
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return &servers{
		tcp: &http.Server{Handler: h, TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second},
		udp: &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(tc), IdleTimeout: 60 * time.Second},
	}
}

// close stops both servers at once.
func (s *servers) close() error {
	err := s.tcp.Close()
	if err2 := s.udp.Close(); !errors.Is(err2, http.ErrServerClosed) {
		err = errors.Join(err, err2)
	}
	return err
}
