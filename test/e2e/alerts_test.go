package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// TestAlertFires runs a real Prometheus server (Debian's prometheus
// package; scripts/test.sh installs it) with fluxguard's alerting rules
// (deploy/prometheus), scraping the real binary while fluxsim's flux name
// is queried, and waits for FluxguardFastFluxDomain to fire for it through
// Prometheus's HTTP API.
func TestAlertFires(t *testing.T) {
	promBin := testenv.Tool(t, "prometheus")
	rules, err := filepath.Abs("../../deploy/prometheus/fluxguard-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t)
	dnsAddr, metricsAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	startCoreDNS(t, fmt.Sprintf(`
%s {
    bind 127.0.0.1
    prometheus %s
    fluxguard {
        action block
        block_rcode REFUSED
    }
    cache 30
    forward . %s
}
`, zoneAt(dnsAddr), metricsAddr, sim.Addr()))

	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: coredns
    static_configs:
      - targets: ['%s']
`, rules, metricsAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(promBin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	prom.Stdout, prom.Stderr = log, log
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prom.Process.Kill()
		prom.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("prometheus's log:\n%s", out)
		}
	})

	flag(t, dnsAddr, "login.fluxy.top.")
	if r := query(t, "tcp", dnsAddr, "login.fluxy.top.", dns.TypeA, true); r.Rcode != dns.RcodeRefused {
		t.Fatalf("login.fluxy.top not blocked:\n%s", r)
	}

	deadline := time.Now().Add(90 * time.Second)
	for {
		firing, err := firingAlerts(promAddr)
		if err == nil && firing["FluxguardFastFluxDomain/login.fluxy.top"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FluxguardFastFluxDomain never fired for login.fluxy.top: firing %v, last error %v", firing, err)
		}
		time.Sleep(time.Second)
	}
	// The other rules' series are scraped too (the gauges are refreshed
	// every 10 seconds); names_evicted_total appears with the first eviction.
	for _, name := range []string{"coredns_fluxguard_actions_total", "coredns_fluxguard_tracked_names",
		"coredns_fluxguard_tracked_names_max", "coredns_fluxguard_responses_inspected_total", "coredns_dns_requests_total"} {
		for !hasSeries(promAddr, name) {
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus has no %s series", name)
			}
			time.Sleep(time.Second)
		}
	}
}

// hasSeries reports whether Prometheus at addr has a series of metric name.
func hasSeries(addr, name string) bool {
	var resp struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	body := httpGetErr("http://" + addr + "/api/v1/query?query=" + name)
	return json.Unmarshal([]byte(body), &resp) == nil && len(resp.Data.Result) > 0
}

// firingAlerts returns the alerts Prometheus at addr fires, as
// "alertname/domain".
func firingAlerts(addr string) (map[string]bool, error) {
	body := httpGetErr("http://" + addr + "/api/v1/alerts")
	if body == "" {
		return nil, fmt.Errorf("no answer from Prometheus at %s", addr)
	}
	var resp struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, err
	}
	firing := map[string]bool{}
	for _, a := range resp.Data.Alerts {
		if a.State == "firing" {
			firing[a.Labels["alertname"]+"/"+a.Labels["domain"]] = true
		}
	}
	return firing, nil
}
