// Package bench compares lbkit's balancer with the libraries a Go user
// would reach for instead: Caddy's reverse-proxy selection policies,
// go-kit's sd/lb round robin, github.com/stathat/consistent and
// github.com/serialx/hashring.
//
// It is a separate module (github.com/lbkit/lbkit/bench, with a replace
// directive pointing at the library in ../) so that the library's own
// go.mod never depends on a competitor: users of lbkit download none of
// Caddy's, go-kit's or the rings' dependencies, and the comparison can pin
// and upgrade peer versions without touching the library.
//
// The benchmarks in bench_test.go time one pick per job, ours beside each
// peer's, serially and with b.RunParallel. Balance measures what the hash
// schedulers do with keys: the imbalance of a key population over nodes
// and the share of keys that move when one node leaves; Discrepancy and
// LongestRun measure how evenly a weighted round robin spreads its picks.
// The program in cmd/balance prints those figures for the README.
//
// Results, the command that produced them and the machine are in
// README.md.
package bench
