package listener

import "errors"

// HTTPOptions configures HTTP and HTTPS listeners.
type HTTPOptions struct{}

func (o *HTTPOptions) effective(*Config) error { return nil }

func startHTTP(*Listener) (server, error) {
	return nil, errors.New("listener: http and https listeners are not available yet")
}
