package quiclb

// Decoder reads server IDs out of connection IDs for a load balancer, under
// one Config (draft Section 4.4). It keeps the AES key schedule, so each
// decode is at most three or four AES block operations (four-pass), one
// (single-pass) or none (plaintext), and allocates nothing.
//
// Most callers want ServerID, or Backend with a ServerIDs table. To hold
// two configurations during a rotation, keep one Decoder per ConfigID and
// pick by the top three bits of the connection ID's first octet.
//
// A Decoder is immutable and safe for concurrent use.
type Decoder struct {
	c codec
}

// NewDecoder returns a decoder for cfg, or a *ConfigError naming the first
// refused field.
func NewDecoder(cfg Config) (*Decoder, error) {
	c, err := newCodec(cfg)
	if err != nil {
		return nil, err
	}
	return &Decoder{c: c}, nil
}

// ServerID returns the server ID encoded in dcid, a destination connection
// ID from a long or a short header. ok is false when dcid is not routable
// under the configuration: shorter than ConnIDLen, of another config
// rotation codepoint (7, "route by four-tuple", included) or, with
// EncodeLength, claiming a length shorter than the configuration's or
// longer than dcid. Octets past ConnIDLen are ignored (servers may append
// their own). dcid is not retained; nothing is allocated.
//
// A decoded ID is not proof of anything: a forged DCID decodes to some
// ID, so map IDs to backends with a table and treat unknown ones as
// unroutable.
func (d *Decoder) ServerID(dcid []byte) (id ServerID, ok bool) {
	if !d.c.decode(id.b[:], dcid) {
		return ServerID{}, false
	}
	id.n = uint8(d.c.cfg.ServerIDLen)
	return id, true
}

// ConnIDLen returns the length of the configuration's connection IDs: what
// a UDP listener must be told to read short-header DCIDs.
func (d *Decoder) ConnIDLen() int { return d.c.cidLen() }

// Mode returns how the configuration encodes server IDs.
func (d *Decoder) Mode() Mode { return d.c.cfg.Mode() }
