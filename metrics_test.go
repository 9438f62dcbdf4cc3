package fluxguard

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsListed checks that deploy/fluxguard-metrics.txt, which the
// dashboard's test reads, lists exactly the metrics fluxguard exports.
func TestMetricsListed(t *testing.T) {
	var exported []string
	for _, c := range []prometheus.Collector{responsesInspected, verdicts, actions, trackedNames, trackedNamesMax,
		namesEvicted, flaggedDomains, flaggedDomain, stateSaveFailures, stateSaved, fleetCollector{},
		rpzSerial, rpzRecords, rpzLeftOut, rpzTransfers} {
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

// TestBlockServer checks the server label of a block's series that no
// query carries (the rpz zone's) against the names dnsserver gives its
// servers: "dns://:53" for a block without bind.
func TestBlockServer(t *testing.T) {
	tests := []struct {
		cfg  dnsserver.Config
		want string
	}{
		{dnsserver.Config{Transport: "dns", ListenHosts: []string{""}, Port: "53"}, "dns://:53"},
		{dnsserver.Config{Transport: "dns", ListenHosts: []string{"127.0.0.1", "::1"}, Port: "1053"}, "dns://127.0.0.1:1053"},
		{dnsserver.Config{Transport: "dns", ListenHosts: []string{"::1"}, Port: "53"}, "dns://[::1]:53"},
		{dnsserver.Config{Transport: "tls", ListenHosts: []string{"0.0.0.0"}, Port: "853"}, "tls://0.0.0.0:853"},
	}
	for _, tt := range tests {
		if got := blockServer(&tt.cfg); got != tt.want {
			t.Errorf("%v %v %s: got %q, want %q", tt.cfg.Transport, tt.cfg.ListenHosts, tt.cfg.Port, got, tt.want)
		}
	}
}
