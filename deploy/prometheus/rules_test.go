// Package prometheus holds fluxguard's Prometheus alerting rules; its test
// runs promtool over them and their unit tests.
package prometheus

import (
	"os/exec"
	"testing"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// TestRules runs `promtool check rules` and `promtool test rules`
// (Debian's prometheus package; scripts/test.sh installs it).
func TestRules(t *testing.T) {
	promtool := testenv.Tool(t, "promtool")
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
