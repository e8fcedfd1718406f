// Package reliability holds lbkit's fault, live-change, hostile-input
// and operations tests. It has no API: its tests drive real listeners
// (package listener) over loopback sockets, with real backends and
// clients, and record the figures they measure. The operations tests
// (reload with a failing bind, unauthenticated writes) run the clb
// binary itself, built once per run, as an operator would: a file,
// signals, the admin API. Run
//
//	LBKIT_RELIABILITY_REPORT=$PWD/RELIABILITY.md go test -count=1 ./examples/reliability
//
// from the repository root to rewrite RELIABILITY.md from a fresh run.
package reliability
