package acl

import (
	"fmt"
	"net/netip"
)

// Family is an IP address family. A [Group] holds entries of one family and
// can only be bound to a listener of the same family.
//
// The zero value is not a valid family. A Family is a plain value, safe to
// copy and share.
type Family uint8

// The two address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "IPv4", "IPv6", or "Family(n)" for an invalid value.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

func (f Family) valid() bool { return f == IPv4 || f == IPv6 }

// familyOf returns the family of a (unmapped) address.
func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}
