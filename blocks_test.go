package fluxguard

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"
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
