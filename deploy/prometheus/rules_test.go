// Package prometheus holds fluxguard's Prometheus alerting rules; its test
// runs promtool over them and their unit tests.
package prometheus

import (
	"os"
	"os/exec"
	"testing"
)

// TestRules runs `promtool check rules` and `promtool test rules`
// (Debian's prometheus package; scripts/test.sh installs it).
func TestRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("FLUXGUARD_REQUIRE_DATA") != "" {
			t.Fatal("promtool is not installed: run scripts/test.sh, which installs it")
		}
		t.Skip("promtool is not installed: scripts/test.sh installs it and runs this")
	}
	for _, args := range [][]string{
		{"check", "rules", "fluxguard-rules.yml"},
		{"test", "rules", "fluxguard-rules.test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
