package fluxguard

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsListed checks that deploy/fluxguard-metrics.txt, which the
// dashboard's test reads, lists exactly the metrics fluxguard exports.
func TestMetricsListed(t *testing.T) {
	var exported []string
	for _, c := range []prometheus.Collector{responsesInspected, verdicts, actions, trackedNames, trackedNamesMax,
		namesEvicted, flaggedDomains, flaggedDomain, stateSaveFailures, stateSaved, fleetCollector{}} {
		descs := make(chan *prometheus.Desc, 1)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			_, name, _ := strings.Cut(d.String(), `fqName: "`)
			name, _, _ = strings.Cut(name, `"`)
			exported = append(exported, name)
		}
	}
	b, err := os.ReadFile("deploy/fluxguard-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Fields(string(b))
	slices.Sort(exported)
	slices.Sort(listed)
	if !slices.Equal(exported, listed) {
		t.Errorf("deploy/fluxguard-metrics.txt lists %v; fluxguard exports %v", listed, exported)
	}
}
