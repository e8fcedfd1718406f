package quichandoff_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"time"

	"github.com/lbkit/lbkit/quichandoff"
	"github.com/quic-go/quic-go"
)

// generationServer serves QUIC on udp as generation gen, each stream
// with handle on a goroutine of its own. It returns the Conn, the
// listener and a function that stops it all.
func generationServer(udp *net.UDPConn, gen int, tlsConf *tls.Config, handle func(*quic.Stream)) (*quichandoff.Conn, *quic.Listener, func()) {
	ids := quichandoff.NewGenerator(nil, gen)
	conn := quichandoff.NewConn(udp, ids)
	tr := &quic.Transport{Conn: conn, ConnectionIDGenerator: ids}
	ln, err := tr.Listen(tlsConf, &quic.Config{MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				for {
					st, err := c.AcceptStream(context.Background())
					if err != nil {
						return
					}
					go handle(st)
				}
			}()
		}
	}()
	return conn, ln, func() { ln.Close(); <-done; tr.Close(); conn.Close() }
}

// sayGeneration answers a stream with the generation's name.
func sayGeneration(gen int) func(*quic.Stream) {
	return func(st *quic.Stream) {
		io.ReadAll(st)
		fmt.Fprintf(st, "generation %d", gen)
		st.Close()
	}
}

// ask opens a stream on c and returns the answer.
func ask(c *quic.Conn) string {
	st, err := c.OpenStreamSync(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	st.Close()
	b, err := io.ReadAll(st)
	if err != nil {
		log.Fatal(err)
	}
	return string(b)
}

// Two generations of a QUIC server on one UDP socket: the successor
// starts on a duplicate of the socket with one end of a Pair, the old
// process keeps the other and retires. Its client's connection goes on
// with it; a new client gets the successor.
func ExampleConn() {
	serverTLS, clientTLS := exampleTLS()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	// The successor's descriptor of the socket, made before anyone reads
	// it: net.FilePacketConn puts the socket in blocking mode for a
	// moment, and a read of the old server that entered the kernel then
	// would wait there. (Listener.Files of package listener hands
	// descriptors that never do.)
	f, err := udp.File()
	if err != nil {
		log.Fatal(err)
	}
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		log.Fatal(err)
	}
	old, oldLn, stopOld := generationServer(udp, 0, serverTLS, sayGeneration(0))
	defer stopOld()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := quic.DialAddr(ctx, udp.LocalAddr().String(), clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	fmt.Println("before:", ask(c))

	// The upgrade: a pair, the socket and one end for the successor
	// (in another process, through its descriptors).
	keep, hand, err := quichandoff.Pair()
	if err != nil {
		log.Fatal(err)
	}
	defer keep.Close()
	defer hand.Close()
	if err := old.Link(keep); err != nil {
		log.Fatal(err)
	}
	succ, _, stopSucc := generationServer(pc.(*net.UDPConn), 1, serverTLS, sayGeneration(1))
	defer stopSucc()
	if err := succ.Forward(hand); err != nil {
		log.Fatal(err)
	}
	// The successor is ready: the old process retires.
	oldLn.Close()
	if err := old.Retire(); err != nil {
		log.Fatal(err)
	}

	fmt.Println("old connection after the retire:", ask(c))
	c2, err := quic.DialAddr(ctx, udp.LocalAddr().String(), clientTLS, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c2.CloseWithError(0, "")
	fmt.Println("new connection:", ask(c2))
	// Output:
	// before: generation 0
	// old connection after the retire: generation 0
	// new connection: generation 1
}

// exampleTLS returns a server config with a fresh self-signed
// certificate for 127.0.0.1 and a client config that trusts it.
func exampleTLS() (server, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	const alpn = "example"
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{alpn}},
		&tls.Config{RootCAs: roots, NextProtos: []string{alpn}}
}

// A generator of generation 3 makes IDs of 8 octets with the low bit of
// the first octet set.
func ExampleNewGenerator() {
	g := quichandoff.NewGenerator(nil, 3)
	id, _ := g.GenerateConnectionID()
	fmt.Println(g.ConnectionIDLen(), id.Len(), id.Bytes()[0]&1)
	// Output: 8 8 1
}
