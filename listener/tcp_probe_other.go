//go:build !linux

package listener

// dirProbe is empty: there is no probe here.
type dirProbe struct{}

// probe cannot tell what the socket holds here: the copy finds out, and a
// direction keeps its goroutine, waiting inside the copy under copyBound
// deadlines (there is no poller to park it in).
func (*tcpDir) probe() (int, probeState) { return chunk, probeUnknown }

// waitBriefly is never reached: probe never reports quiet here.
func (*tcpDir) waitBriefly() bool { return true }
