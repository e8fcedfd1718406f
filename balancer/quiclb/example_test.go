package quiclb_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"

	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/quic-go/quic-go"
)

// A backend's quic-go Transport issues QUIC-LB connection IDs for its
// server ID. Every backend shares the configuration (and key) with the
// load balancer, and its own server ID; they also share quic-go's
// StatelessResetKey and TokenGeneratorKey.
func ExampleGenerator() {
	key, _ := hex.DecodeString("8f95f09245765f80256934e50c66207f")
	cfg := quiclb.Config{
		ConfigID:     0,
		ServerIDLen:  3,
		NonceLen:     4,
		Key:          key,
		EncodeLength: true,
		// Only so the output is fixed: the nonce counter starts at the
		// draft's test-vector nonce instead of a random value.
		Rand: bytes.NewReader([]byte{0xee, 0x08, 0x0d, 0xbf}),
	}
	id, _ := quiclb.ParseServerID("ed793a")
	gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{Config: cfg, ServerID: id})
	if err != nil {
		fmt.Println(err)
		return
	}
	cid, _ := gen.GenerateConnectionID()
	fmt.Println(cfg.Mode(), gen.ConnectionIDLen(), cid)

	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		fmt.Println(err)
		return
	}
	tr := &quic.Transport{
		Conn:                  pc,
		ConnectionIDGenerator: gen,
		// StatelessResetKey and TokenGeneratorKey: the same on every backend.
	}
	defer pc.Close()
	defer tr.Close()
	// tr.Listen(tlsConf, quicConf) ...

	// Output: four-pass 8 0720b1d07b359d3c
}

// The load balancer decodes the server ID from a packet's destination
// connection ID and maps it to a backend.
func ExampleDecoder() {
	key, _ := hex.DecodeString("8f95f09245765f80256934e50c66207f")
	dec, err := quiclb.NewDecoder(quiclb.Config{ServerIDLen: 3, NonceLen: 4, Key: key, EncodeLength: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	a, _ := quiclb.ParseServerID("ed793a")
	b, _ := quiclb.ParseServerID("000001")
	backends := quiclb.ServerIDs{a: "backend-a", b: "backend-b"}

	dcid, _ := hex.DecodeString("0720b1d07b359d3c")
	id, ok := dec.ServerID(dcid)
	fmt.Println(id, ok)
	fmt.Println(dec.Backend(dcid, backends))

	// A client-chosen Initial DCID (codepoint 7 here) is unroutable: fall
	// back to the four-tuple.
	fmt.Println(dec.Backend([]byte{0xe3, 1, 2, 3, 4, 5, 6, 7}, backends))
	// Output:
	// ed793a true
	// backend-a true
	//  false
}

// A Router is what a UDP listener asks for each new flow: lbkit's
// listener.Config.QUICRouter takes it as is. The table can change while it
// is in use.
func ExampleRouter() {
	key, _ := hex.DecodeString("8f95f09245765f80256934e50c66207f")
	dec, err := quiclb.NewDecoder(quiclb.Config{ServerIDLen: 3, NonceLen: 4, Key: key, EncodeLength: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	a, _ := quiclb.ParseServerID("ed793a")
	r, err := quiclb.NewRouter(quiclb.RouterConfig{Decoder: dec, ServerIDs: quiclb.ServerIDs{a: "backend-a"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	// With the listener:
	//	listener.Config{Protocol: listener.UDP, Group: qchGroup,
	//		QUICRouter: r, QUICConnIDLength: dec.ConnIDLen(), ...}

	dcid, _ := hex.DecodeString("0720b1d07b359d3c")
	fmt.Println(r.Route(dcid))

	// backend-a leaves: its connections fall back to the four-tuple.
	fmt.Println(r.SetServerIDs(quiclb.ServerIDs{}))
	fmt.Println(r.Route(dcid))
	// Output:
	// backend-a true
	// <nil>
	//  false
}
