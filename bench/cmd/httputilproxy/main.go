// Command httputilproxy is the baseline of bench/run.sh's l7 suite: a plain
// net/http/httputil.ReverseProxy, tuned as a Go user would tune it (a shared
// Transport with enough idle connections per backend for the load, no
// access log), round-robining over the backends given.
//
//	httputilproxy -listen 127.0.0.1:19084 -backends 127.0.0.1:18001,127.0.0.1:18002
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19084", "listen `address`")
	backends := flag.String("backends", "127.0.0.1:18001", "comma-separated backend `host:port` list")
	cert := flag.String("cert", "", "certificate PEM `file`: serve HTTPS (and HTTP/2) with -key")
	key := flag.String("key", "", "private key PEM `file` for -cert")
	flag.Parse()

	var targets []*url.URL
	for _, b := range strings.Split(*backends, ",") {
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
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			t := targets[next.Add(1)%uint64(len(targets))]
			r.SetURL(t)
			r.Out.Host = r.In.Host
		},
		Transport: tr,
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	if *cert != "" {
		log.Fatal(srv.ListenAndServeTLS(*cert, *key))
	}
	log.Fatal(srv.ListenAndServe())
}
