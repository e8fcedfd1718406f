// Package tlspolicy holds the TLS security policies of an HTTPS listener
// (docs/model.md §9) and the certificate, session and mutual-TLS rules that go with
// them, all expressed as a Go crypto/tls server configuration.
//
// # Policies
//
// A [Policy] is a set of TLS versions and cipher suites, the suites named
// as OpenSSL names them. Five are built in; [DefaultPolicy] is
// tls_cipher_policy_1_0:
//
//	policy                                 versions        suites
//	tls_cipher_policy_1_0                  1.0, 1.1, 1.2   19 (RSA, ECDHE, 3DES)
//	tls_cipher_policy_1_1                  1.1, 1.2        same 19
//	tls_cipher_policy_1_2                  1.2             same 19
//	tls_cipher_policy_1_2_strict           1.2             12 ECDHE-* only
//	tls_cipher_policy_1_2_strict_with_1_3  1.2, 1.3        12 ECDHE-* and 5 TLS 1.3
//
// [Lookup] finds one by name, [New] defines a custom one (a
// contiguous range of TLS 1.0–1.3 and up to 32 suites from [Suites]), and
// [Policy.Config] or [Policy.Apply] turns it into a tls.Config. Each
// [Suite] carries its crypto/tls ID and a [Support] marker, computed at
// init from tls.CipherSuites and tls.InsecureCipherSuites so the table
// never claims a suite the running Go cannot negotiate.
//
// # What Go's crypto/tls cannot offer
//
// These CLB entries stay in the policy tables, marked [NotOffered], and
// are never configured (checked on Go 1.26; see [Unsupported]):
//
//	OpenSSL name               IANA     in policies
//	ECDHE-ECDSA-AES256-SHA384  0xC024   all five
//	ECDHE-RSA-AES256-SHA384    0xC028   all five
//	AES256-SHA256              0x003D   1_0, 1_1, 1_2
//	TLS_AES_128_CCM_SHA256     0x1304   1_2_strict_with_1_3
//	TLS_AES_128_CCM_8_SHA256   0x1305   1_2_strict_with_1_3
//
// The other three TLS 1.3 suites are [FixedTLS13]: crypto/tls enables all
// three whenever TLS 1.3 is negotiated and cannot switch one off, so a
// custom policy with TLS 1.3 must list all three. Which one a handshake
// uses is Go's choice: two crypto/tls peers pick TLS_AES_128_GCM_SHA256 on
// AES hardware, TLS_CHACHA20_POLY1305_SHA256 when the client prefers
// ChaCha20, and TLS_AES_256_GCM_SHA384 only for a client that offers
// nothing else, which a crypto/tls client cannot do.
//
// # TLS 1.0, TLS 1.1, 3DES and RSA key exchange
//
// Since Go 1.22 a server refuses TLS 1.0 and 1.1 and leaves out the
// RSA-key-exchange suites (AES128-SHA, AES128-GCM-SHA256, …) unless told
// otherwise; since Go 1.23 3DES (DES-CBC3-SHA) is left out too. Those
// defaults only apply to a tls.Config with MinVersion 0 or CipherSuites
// nil. [Policy.Apply] always sets both, so no GODEBUG setting
// (tls10server, tlsrsakex, tls3des) is needed: the policy alone decides.
// The RSA-key-exchange suites and the ECDHE-RSA-* suites need an RSA
// certificate and the ECDHE-ECDSA-* suites an ECDSA one; a listener that
// wants both families serves one of each in tls.Config.Certificates.
//
// # Certificates
//
// [LoadCertificate] takes a PEM certificate (with optional chain) and key
// and accepts exactly the key types of the CLB: RSA 1024, 2048 and 4096
// bits, ECDSA P-256, P-384 and P-521. It refuses non-PEM input (DER,
// PKCS#12), DH parameters, encrypted keys, keys that do not match the
// certificate and other key types or sizes (RSA 3072, P-224, Ed25519), each
// with its own sentinel error, e.g. [ErrEncryptedKey]. RSA 1024 needs no
// GODEBUG: Go 1.24's rsa1024min only refuses keys below 1024 bits.
//
// # Sessions and mutual TLS
//
// Resumption is limited to [SessionLifetime] (300 s) by
// [LimitSessionLifetime], which [Policy.Config] applies; crypto/tls alone
// accepts tickets for 7 days. The 300 s count from a session's full
// handshake: a client resumes every connection until then, the tickets
// issued on resumed connections included, and then makes one full
// handshake. A server that serves the config from its own
// GetConfigForClient must call the config's GetConfigForClient, which
// keeps that count per connection. Tickets still advertise crypto/tls's fixed
// lifetime (7 days in TLS 1.3, no hint in TLS 1.2), since crypto/tls
// offers no way to change it: a client offering a ticket older than 300 s
// gets a full handshake. [RequireClientCert] with a pool from
// [LoadCAPool] makes a server verify client certificates, and
// [DescribeClientCert] summarises one for backend headers.
//
// See Example for a loopback handshake under a policy.
package tlspolicy
