// Package quichandoff keeps a QUIC server's connections alive across a
// binary upgrade in which the retiring process and its successor share
// one UDP socket.
//
// # Model
//
// During an upgrade both processes hold the same UDP socket, and the
// kernel gives each datagram to whichever reads first. A packet of a
// connection the other process owns is unknown to the reader: dropped,
// or answered with a stateless reset. This package, after the socket
// takeover of Facebook's [mvfst] (its server's TakeoverPacketHandler),
// routes each packet to the process that owns its connection:
//
//   - Every connection ID a server issues carries its generation's
//     parity (generation % 2) in the lowest bit of the first octet
//     (Generator). A QUIC-LB generator leaves that bit random, so it
//     can be taken without touching the config rotation bits or the
//     encoded server ID; with QUIC-LB's EncodeLength no bit is free.
//   - Conn wraps the UDP socket quic-go reads and sorts every datagram:
//     a short-header packet, or a long-header Handshake packet, whose
//     destination connection ID has the other generation's bit is not
//     this process's. Initial and 0-RTT packets always stay: their
//     destination ID was chosen by the client.
//   - The two processes share a local socket (Pair): the retiring one
//     keeps one end, the successor gets the other. The successor hands
//     the other generation's packets, with their source address, over
//     it (Conn.Forward). The retiring process, until it retires, sends
//     the successor's packets the other way (Conn.Link) and reads what
//     the successor forwarded between its reads of the UDP socket; once
//     it retires (Conn.Retire) it stops reading the UDP socket and
//     reads only forwarded packets. It keeps writing its replies to the
//     shared UDP socket itself. Without a pair, the other generation's
//     packets are dropped, never answered with a stateless reset.
//   - A third generation would have the first one's parity: an
//     upgrade must wait until the process its predecessor forwards to
//     has exited (PeerOpen).
//
// The local socket is SOCK_SEQPACKET: datagrams keep their bounds as
// with SOCK_DGRAM, and when one side exits the other reads end of file.
// A packet that does not fit the socket's buffer is dropped; QUIC
// retransmits it.
//
// Conn keeps quic-go's batch reads (ReadBatch, recvmmsg) and ECN: it is
// a quic.OOBCapablePacketConn. Sorting a batch allocates nothing.
//
// See ExampleConn for two generations on one socket.
//
// [mvfst]: https://github.com/facebookincubator/mvfst
package quichandoff
