package fluxguard

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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

// TestBlockSums checks that the gauges several server blocks on one
// address set (zones, views) show the sum of their values, each block's
// latest, under the server it last set it for.
func TestBlockSums(t *testing.T) {
	g := newBlockSums(prometheus.GaugeOpts{Name: "test_block_sums", Help: "test"})
	defer prometheus.Unregister(g)
	type step struct {
		set          bool // else forget
		server, key  string
		value        float64
		wantA, wantB float64 // -1: no series
	}
	for i, s := range []step{
		{true, "dns://:53", "a.test#0", 41, 41, -1},
		{true, "dns://:53", "b.test#0", 4, 45, -1},
		{true, "dns://:53", "a.test#0", 40, 44, -1},
		{true, "dns://:5353", "b.test#0", 6, 40, 6}, // b moved by a reload
		{false, "", "a.test#0", 0, -1, 6},
		{false, "", "b.test#0", 0, -1, -1},
	} {
		if s.set {
			g.set(s.server, s.key, s.value)
		} else {
			g.forget(s.key)
		}
		shown := seriesByServer(g)
		for server, want := range map[string]float64{"dns://:53": s.wantA, "dns://:5353": s.wantB} {
			got, ok := shown[server]
			if !ok {
				got = -1
			}
			if got != want {
				t.Errorf("step %d: %s shows %v, want %v", i, server, got, want)
			}
		}
	}
}

// seriesByServer returns the value of each of c's series by its server label.
func seriesByServer(c prometheus.Collector) map[string]float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	out := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			panic(err)
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "server" {
				out[l.GetValue()] = toFloat64(m)
			}
		}
	}
	return out
}
