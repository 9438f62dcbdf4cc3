package fluxguard

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// setupInstance runs setup on corefile, as CoreDNS does at start and at
// each reload, and returns the handler it made.
func setupInstance(t *testing.T, corefile string) *Fluxguard {
	t.Helper()
	c := caddy.NewTestController("dns", corefile)
	if err := setup(c); err != nil {
		t.Fatalf("setup: %v", err)
	}
	return dnsserver.GetConfig(c).Plugin[0](nil).(*Fluxguard)
}

// TestFailedReloadKeepsState checks that a reload whose fluxguard block is
// set up, but which fails later (another plugin's setup, before any
// startup; or a busy port, after the new instance started), leaves the
// running instance its own caps and names.
func TestFailedReloadKeepsState(t *testing.T) {
	tests := []struct {
		name    string
		reload  string
		started bool // the reload's instance started before the failure
	}{
		{"failed in another plugin's setup", "fluxguard {\n max_names 10\n exclude_suffixes example.com\n allow host1.example.com\n}", false},
		{"failed after the new instance started", "fluxguard {\n max_names 10\n}", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			running := setupInstance(t, "fluxguard {\n max_names 1000\n}")
			defer running.finalShutdown()
			for i := range 50 {
				running.eng.Observe(&engine.Observation{Name: fmt.Sprintf("host%d.example.com", i),
					Addrs: []netip.Addr{netip.MustParseAddr("45.0.0.1")}})
			}
			capacity, names := running.eng.Capacity(), running.eng.Len()

			next := setupInstance(t, tc.reload)
			if tc.started {
				if err := next.start(); err != nil {
					t.Fatal(err)
				}
				if next.eng.Capacity() == capacity {
					t.Fatalf("the started reload did not take its max_names: %d", capacity)
				}
			}
			running.restartFailed()
			if got := running.eng.Capacity(); got != capacity {
				t.Errorf("capacity after the failed reload: %d, want %d", got, capacity)
			}
			if got := running.eng.Len(); got != names {
				t.Errorf("tracked names after the failed reload: %d, want %d", got, names)
			}
		})
	}
}
