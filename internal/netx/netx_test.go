package netx

import (
	"net/netip"
	"testing"
)

func TestServiceDst(t *testing.T) {
	local := netip.MustParseAddrPort("127.0.0.2:8443")
	tests := []struct {
		name, service, want string
	}{
		{"unset", "", "127.0.0.2:8443"},
		{"address and port", "192.0.2.10:443", "192.0.2.10:443"},
		{"port 0 keeps the local port", "192.0.2.10:0", "192.0.2.10:8443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var svc netip.AddrPort
			if tt.service != "" {
				svc = netip.MustParseAddrPort(tt.service)
			}
			if got := ServiceDst(svc, local); got.String() != tt.want {
				t.Errorf("ServiceDst(%v, %v) = %v, want %s", svc, local, got, tt.want)
			}
		})
	}
}
