package listener

import "errors"

func startUDP(l *Listener) (server, error) {
	return nil, errors.New("listener: udp not yet")
}
