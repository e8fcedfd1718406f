package tlspolicy

// Config defines a custom [Policy] for [New]. The built-in policies need
// none: [Lookup] returns them by name.
type Config struct {
	// Name names the policy in logs and in [Policy.String]. It must not be
	// a built-in policy's name. If empty, "custom" is used.
	Name string

	// Versions lists the TLS versions the policy allows, a contiguous
	// range of "1.0", "1.1", "1.2" and "1.3" ("TLSv1.2" and "TLS1.2" are
	// accepted too). Required.
	Versions []string

	// Suites lists 1 to [MaxCustomSuites] cipher suites by the OpenSSL
	// names of [Suites]. Required.
	Suites []string
}
