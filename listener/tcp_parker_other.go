//go:build !linux || 386 || arm

package listener

// parker is not wired up where epoll is missing: each direction then
// keeps its goroutine and waits inside the copy, under copyBound
// deadlines.
type parker struct{}

func newParker() (*parker, error) { return nil, nil }

func (*parker) park(*tcpDir) bool   { return false }
func (*parker) unpark(*tcpDir) bool { return false }
func (*parker) run()                {}
func (*parker) close()              {}

// dirProbe is empty: there is no probe here.
type dirProbe struct{}

// probe cannot tell what the socket holds here: the copy finds out.
func (*tcpDir) probe() (int, probeState) { return chunk, probeUnknown }

// waitBriefly is never reached: probe never reports quiet here.
func (*tcpDir) waitBriefly() bool { return true }
