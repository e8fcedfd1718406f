package session

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        Config
		noBackends bool   // leave Backends nil
		field      string // "" means accepted
	}{
		{name: "zero value", cfg: Config{}},
		{name: "insert name with tchars", cfg: Config{CookieName: "lb_srv-1.x"}},
		{name: "insert name 200", cfg: Config{CookieName: strings.Repeat("a", 200)}},
		{name: "insert name 201", cfg: Config{CookieName: strings.Repeat("a", 201)}, field: "CookieName"},
		{name: "insert name $", cfg: Config{CookieName: "$Version"}, field: "CookieName"},
		{name: "insert name space", cfg: Config{CookieName: "a b"}, field: "CookieName"},
		{name: "insert name =", cfg: Config{CookieName: "a=b"}, field: "CookieName"},
		{name: "rewrite name", cfg: Config{Mode: Rewrite, CookieName: "JSESSIONID"}},
		{name: "rewrite name required", cfg: Config{Mode: Rewrite}, field: "CookieName"},
		{name: "rewrite name underscore", cfg: Config{Mode: Rewrite, CookieName: "php_sess"}, field: "CookieName"},
		{name: "rewrite name $", cfg: Config{Mode: Rewrite, CookieName: "$a"}, field: "CookieName"},
		{name: "rewrite name 201", cfg: Config{Mode: Rewrite, CookieName: strings.Repeat("Z", 201)}, field: "CookieName"},
		{name: "rewrite ignores timeout in range", cfg: Config{Mode: Rewrite, CookieName: "A", CookieTimeout: time.Minute}},
		{name: "rewrite timeout out of range", cfg: Config{Mode: Rewrite, CookieName: "A", CookieTimeout: -time.Second}, field: "CookieTimeout"},
		{name: "unknown mode", cfg: Config{Mode: 7}, field: "Mode"},
		{name: "timeout 1s", cfg: Config{CookieTimeout: time.Second}},
		{name: "timeout 86400s", cfg: Config{CookieTimeout: 86400 * time.Second}},
		{name: "timeout 30 days, beyond the CLB", cfg: Config{CookieTimeout: 30 * 86400 * time.Second}},
		{name: "timeout 500ms", cfg: Config{CookieTimeout: 500 * time.Millisecond}, field: "CookieTimeout"},
		{name: "timeout 1.5s", cfg: Config{CookieTimeout: 1500 * time.Millisecond}, field: "CookieTimeout"},
		{name: "timeout negative", cfg: Config{CookieTimeout: -time.Second}, field: "CookieTimeout"},
		{name: "samesite strict", cfg: Config{SameSite: http.SameSiteStrictMode}},
		{name: "samesite bogus", cfg: Config{SameSite: 9}, field: "SameSite"},
		{name: "key 16", cfg: Config{Key: make([]byte, 16)}},
		{name: "key 15", cfg: Config{Key: make([]byte, 15)}, field: "Key"},
		{name: "key empty non-nil", cfg: Config{Key: []byte{}}, field: "Key"},
		{name: "previous key 15", cfg: Config{Key: testKey, PreviousKey: make([]byte, 15)}, field: "PreviousKey"},
		{name: "empty backend", cfg: Config{Backends: []string{"a", ""}}, field: "Backends"},
		{name: "no backends, no groups", cfg: Config{}, noBackends: true, field: "Backends"},
		{name: "groups and backends", cfg: Config{Groups: []Group{fixedGroup{"a"}}, Backends: []string{"a"}}, field: "Backends"},
		{name: "nil group", cfg: Config{Groups: []Group{fixedGroup{"a"}, nil}}, noBackends: true, field: "Groups[1]"},
		{name: "groups", cfg: Config{Groups: []Group{fixedGroup{"a"}}}, noBackends: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Backends == nil && !tc.noBackends {
				cfg.Backends = []string{}
			}
			s, err := New(cfg)
			if tc.field == "" {
				if err != nil || s == nil {
					t.Fatalf("New = %v, %v; want success", s, err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || ce.Pkg != "session" {
				t.Fatalf("New error = %v, want *ConfigError for %s", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), "session: "+tc.field+" ") {
				t.Errorf("message %q does not name the field", err)
			}
		})
	}
}

// fixedGroup is a Group whose members never change.
type fixedGroup []string

func (g fixedGroup) IDs() []string            { return g }
func (g fixedGroup) Changed() <-chan struct{} { return nil }

func TestConfigErrorMessage(t *testing.T) {
	_, err := New(Config{})
	if got, want := err.Error(), `session: Backends nil: required: the backend IDs tokens may name, or Groups to follow`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	_, err = New(Config{CookieTimeout: 1500 * time.Millisecond, Backends: []string{}})
	if got, want := err.Error(), `session: CookieTimeout 1.5s: want positive whole seconds`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	_, err = NewAffinity(AffinityConfig{PersistenceTimeout: -time.Second})
	if got, want := err.Error(), `session: PersistenceTimeout -1s: negative (0 = off)`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{Insert: "insert", Rewrite: "rewrite", 5: "Mode(5)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
	s := newSticky(t, Config{})
	if s.Mode() != Insert || s.CookieName() != "SERVERID" {
		t.Errorf("defaults: %v %q", s.Mode(), s.CookieName())
	}
}
