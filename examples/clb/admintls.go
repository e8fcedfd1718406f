package main

import (
	"flag"

	"github.com/lbkit/lbkit/examples/clb/admin"
)

// adminTLSFlags defines the flags of the admin server's TLS.
func adminTLSFlags(fs *flag.FlagSet) *admin.TLSFiles {
	f := &admin.TLSFiles{}
	fs.StringVar(&f.Cert, "admin-cert", "", "PEM `file` of the admin server's certificate chain: serve the admin server over HTTPS (TLS 1.2+; needs -admin-key; read at start only)")
	fs.StringVar(&f.Key, "admin-key", "", "PEM `file` of the private key of -admin-cert")
	fs.StringVar(&f.ClientCA, "admin-client-ca", "", "PEM `file` of CA certificates: a client certificate they verify is an admin credential, as a token (needs -admin-cert)")
	return f
}
