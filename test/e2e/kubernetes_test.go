package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestKubernetesCorefile runs the real binary with the Corefile of
// deploy/kubernetes/coredns-configmap.yaml, as a cluster would, with its
// addresses moved to free loopback ports, the upstream to fluxsim, and the
// kubernetes plugin pointed at an API server that is not there (CoreDNS
// then starts unsynced): the cluster's names still go to the kubernetes
// plugin, and fluxguard, in monitor mode, reports a flux name.
func TestKubernetesCorefile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/kubernetes/coredns-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		t.Fatal(err)
	}
	sim := startSim(t)
	dnsAddr, metricsAddr, reportAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	healthAddr, readyAddr, api := freeAddr(t), freeAddr(t), freeAddr(t)
	corefile := strings.NewReplacer(
		".:53 {", zoneAt(dnsAddr)+" {\n    bind 127.0.0.1",
		"health {", "health "+healthAddr+" {",
		"ready\n", "ready "+readyAddr+"\n",
		"ttl 30\n", "ttl 30\n       endpoint http://"+api+"\n",
		"prometheus :9153", "prometheus "+metricsAddr,
		"report :9254", "report "+reportAddr,
		"forward . /etc/resolv.conf", "forward . "+sim.Addr(),
	).Replace(cm.Data["Corefile"])
	core := startCoreDNS(t, corefile)

	for i, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeA, dns.TypeAAAA} {
		r := query(t, []string{"udp", "tcp"}[i%2], dnsAddr, "login.fluxy.top.", qtype, true)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("monitor mode changed the answer:\n%s", r)
		}
	}
	core.waitLog(t, "domain=login.fluxy.top level=flagged")
	if report := httpGet(t, "http://"+reportAddr+"/report"); !strings.Contains(report, `"DomainName": "login.fluxy.top"`) &&
		!strings.Contains(report, `"DomainName":"login.fluxy.top"`) {
		t.Errorf("the report does not show login.fluxy.top:\n%s", report)
	}
	// The cluster's zone is the kubernetes plugin's: never forwarded.
	before := sim.Queries()
	query(t, "udp", dnsAddr, "kubernetes.default.svc.cluster.local.", dns.TypeA, true)
	if sim.Queries() != before {
		t.Error("a cluster name was forwarded upstream")
	}
}
