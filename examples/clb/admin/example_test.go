package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/listener"
)

// An instance with one TCP listener over two backends, its admin handler
// on loopback, and /status.json read back.
func Example() {
	// The backends only need addresses here: nothing connects to them.
	group, err := balancer.New(balancer.Config{},
		balancer.Backend{ID: "app-1", Addr: "127.0.0.1:8081", Weight: 100},
		balancer.Backend{ID: "app-2", Addr: "127.0.0.1:8082", Weight: 100},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inst.Stop(context.Background())
	if _, err := inst.Add(listener.Config{Name: "web", Protocol: listener.TCP, Host: "127.0.0.1", Group: group}); err != nil {
		fmt.Println(err)
		return
	}
	group.SetHealthy("app-2", false)

	srv := httptest.NewServer(admin.New(inst, admin.Options{}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/status.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range st.Listeners {
		fmt.Printf("%s: %s %s, %d backends\n", st.Instance, l.Name, l.State, len(l.Backends))
		for _, b := range l.Backends {
			fmt.Printf("  %s weight %d healthy %t\n", b.ID, b.Weight, b.Healthy)
		}
	}
	// Output:
	// lb-demo: web running, 2 backends
	//   app-1 weight 100 healthy true
	//   app-2 weight 100 healthy false
}
