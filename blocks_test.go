package fluxguard

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// validate sets up every server block of corefile, as one caddy instance
// does, without starting it, and forgets their state after the test.
func validate(t *testing.T, corefile string) error {
	t.Helper()
	before := map[string]bool{}
	keptMu.Lock()
	for k := range kept {
		before[k] = true
	}
	keptMu.Unlock()
	t.Cleanup(func() {
		keptMu.Lock()
		defer keptMu.Unlock()
		for k := range kept {
			if !before[k] {
				delete(kept, k)
			}
		}
	})
	return caddy.ValidateAndExecuteDirectives(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"}, nil, true)
}

// TestBlocksOfOneAddress checks that server blocks of the same keys, which
// the view plugin tells apart, each keep a state of their own, and that two
// blocks cannot save to one state file.
func TestBlocksOfOneAddress(t *testing.T) {
	t.Run("same keys", func(t *testing.T) {
		if err := validate(t, ".:15301 {\n fluxguard {\n  action block\n }\n}\n.:15301 {\n fluxguard {\n  threshold 1\n }\n}\n"); err != nil {
			t.Fatal(err)
		}
		keptMu.Lock()
		a, b := kept["dns://.:15301#0"].eng, kept["dns://.:15301#1"].eng
		keptMu.Unlock()
		if a == nil || b == nil || a == b {
			t.Errorf("the two blocks' engines: %p and %p, want two", a, b)
		}
	})
	t.Run("one state file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fluxguard.state")
		err := validate(t, "a.test:15302 {\n fluxguard {\n  state_file "+path+"\n }\n}\nb.test:15302 {\n fluxguard {\n  state_file "+path+"\n }\n}\n")
		if err == nil || !strings.Contains(err.Error(), "state_file") || !strings.Contains(err.Error(), ":8") ||
			!strings.Contains(err.Error(), "already the state file of dns://a.test.:15302;") {
			t.Errorf("error %v, want state_file at line 8 already a.test:15302's", err)
		}
	})
}

// TestStateFileClaimByPath checks that the same state file, written
// relative to the working directory in one block and absolute in another,
// is refused too.
func TestStateFileClaimByPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	abs := filepath.Join(dir, "fluxguard.state")
	err := validate(t, "a.test:15311 {\n fluxguard {\n  state_file fluxguard.state\n }\n}\nb.test:15311 {\n fluxguard {\n  state_file "+abs+"\n }\n}\n")
	if err == nil {
		t.Errorf("blocks a.test and b.test both save to %s (once as fluxguard.state, once as %s): accepted", abs, abs)
	}
}

// TestFlaggedSeriesOfTwoViews checks that a view that no longer flags a
// domain leaves the flagged{server,domain} series another view on the same
// address still shows.
func TestFlaggedSeriesOfTwoViews(t *testing.T) {
	server := serverLabel(t)
	lab, def := newFlaggedGauge("dns://.:53#0", 10), newFlaggedGauge("dns://.:53#1", 10)
	lab.add(server, "x.evil.tk")
	def.add(server, "x.evil.tk") // both views flag it
	// The lab view's engine no longer flags it (its hold ended, or an allow).
	eng, err := engine.New(engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	lab.refresh(server, eng)
	// The default view still flags it and shows it in its gauge.
	if _, shown := def.shown["x.evil.tk"]; !shown {
		t.Fatal("setup: the default view does not show it")
	}
	if !flaggedDomain.DeleteLabelValues(server, "x.evil.tk") {
		t.Errorf("coredns_fluxguard_flagged{server=%q,domain=\"x.evil.tk\"} is gone, though the default view flags it and shows it", server)
	}
	def.clear()
}
