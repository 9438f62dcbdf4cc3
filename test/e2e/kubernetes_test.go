package e2e

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// TestKubernetesCorefile runs the real binary with the Corefile of
// deploy/kubernetes/coredns-configmap.yaml, as a cluster would, with its
// addresses moved to free loopback ports, the upstream to fluxsim, and the
// kubernetes plugin pointed at an API server that is not there (CoreDNS
// then starts unsynced): the cluster's names still go to the kubernetes
// plugin, and fluxguard, in monitor mode, reports a flux name.
func TestKubernetesCorefile(t *testing.T) {
	sim := startSim(t)
	k := startClusterCorefile(t, "coredns-configmap.yaml", sim.Addr())
	dnsAddr, reportAddr, core := k.dns, k.report, k.core

	askUntil(t, "udp", dnsAddr, "login.fluxy.top.", flagged(t, core, "login.fluxy.top."))
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

// clusterCoreDNS is the real binary running a Corefile of
// deploy/kubernetes.
type clusterCoreDNS struct {
	dns, metrics, report string
	core                 *coreDNS
}

// startClusterCorefile runs the Corefile of the ConfigMap in file, as a
// cluster would, with its addresses moved to free loopback ports, the
// upstream to upstream, the kubernetes plugin pointed at an API server
// that is not there (CoreDNS then starts unsynced), and the replacements
// of more (pairs of old and new strings).
func startClusterCorefile(t *testing.T, file, upstream string, more ...string) clusterCoreDNS {
	t.Helper()
	b, err := os.ReadFile("../../deploy/kubernetes/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		t.Fatal(err)
	}
	var k clusterCoreDNS
	k.core = startCoreDNSOnFreePorts(t, func() string {
		k = clusterCoreDNS{dns: freeAddr(t), metrics: freeAddr(t), report: freeAddr(t)}
		healthAddr, readyAddr, api := freeAddr(t), freeAddr(t), freeAddr(t)
		return strings.NewReplacer(append([]string{
			".:53 {", zoneAt(k.dns) + " {\n    bind 127.0.0.1",
			"health {", "health " + healthAddr + " {",
			"ready\n", "ready " + readyAddr + "\n",
			"ttl 30\n", "ttl 30\n       endpoint http://" + api + "\n",
			"prometheus :9153", "prometheus " + k.metrics,
			"report :9254", "report " + k.report,
			"forward . /etc/resolv.conf", "forward . " + upstream,
		}, more...)...).Replace(cm.Data["Corefile"])
	})
	return k
}

// TestKubernetesFleetCorefile runs two replicas with the Corefile of
// deploy/kubernetes/fleet, sharing a real redis-server that asks for the
// password, given as the Deployment patch gives it (an environment
// variable), at the address Kubernetes gives its Service's pods: a name
// flagged by one is held by the other.
func TestKubernetesFleetCorefile(t *testing.T) {
	const password = "e2e-fleet-secret"
	srv := testenv.StartRedis(t, "--requirepass", password)
	t.Setenv("FLUXGUARD_REDIS_PASSWORD", password)
	host, port, _ := net.SplitHostPort(srv.Addr)
	t.Setenv("FLUXGUARD_REDIS_SERVICE_HOST", host) // as Kubernetes sets them for the Service
	t.Setenv("FLUXGUARD_REDIS_SERVICE_PORT", port)
	sim := startSim(t)
	a := startClusterCorefile(t, "fleet/coredns-configmap.yaml", sim.Addr())
	b := startClusterCorefile(t, "fleet/coredns-configmap.yaml", sim.Addr())
	askUntil(t, "tcp", a.dns, "login.fluxy.top.", flagged(t, a.core, "login.fluxy.top."))
	waitFor(t, 2*time.Second, "the other replica to hold login.fluxy.top", func() bool {
		return strings.Contains(httpGet(t, "http://"+b.report+"/indicators"), `"name":"login.fluxy.top"`)
	})
	query(t, "udp", b.dns, "www.stable.example.", dns.TypeA, true) // the server label of b's metrics
	for _, k := range []clusterCoreDNS{a, b} {
		if up, err := metricSum(k.metrics, "coredns_fluxguard_shared_up"); err != nil || up != 1 {
			t.Errorf("shared_up %v, %v", up, err)
		}
	}
}
