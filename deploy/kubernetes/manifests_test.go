// Package kubernetes holds the manifests that replace a cluster's CoreDNS
// with the fluxguard build. Its test decodes each strictly into the API
// types of Kubernetes and of the Prometheus Operator, so that a misspelt
// or misplaced field fails. It is a module of its own, so that the plugin
// does not depend on the operator's types. (fluxguard/kubernetes_test.go
// runs the ConfigMap's Corefile with the real binary.)
package kubernetes

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// decode reads file strictly into obj.
func decode(t *testing.T, file string, obj any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func TestConfigMap(t *testing.T) {
	var cm corev1.ConfigMap
	decode(t, "coredns-configmap.yaml", &cm)
	corefile := cm.Data["Corefile"]
	if cm.Kind != "ConfigMap" || cm.Name != "coredns" || cm.Namespace != "kube-system" {
		t.Errorf("ConfigMap %s/%s of kind %s", cm.Namespace, cm.Name, cm.Kind)
	}
	for _, want := range []string{"kubernetes cluster.local", "fluxguard {", "action log", "report :9254", "prometheus :9153", "cache 30"} {
		if !strings.Contains(corefile, want) {
			t.Errorf("the Corefile has no %q", want)
		}
	}
}

func TestDeploymentPatch(t *testing.T) {
	var d appsv1.Deployment
	decode(t, "deployment-patch.yaml", &d)
	c := d.Spec.Template.Spec.Containers
	if d.Name != "coredns" || len(c) != 1 || c[0].Name != "coredns" || !strings.Contains(c[0].Image, "coredns-fluxguard") {
		t.Fatalf("patch %s: containers %+v", d.Name, c)
	}
	if !slices.ContainsFunc(c[0].Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == 9254 }) {
		t.Error("the report port is not declared")
	}
}

func TestNetworkPolicy(t *testing.T) {
	var np networkingv1.NetworkPolicy
	decode(t, "networkpolicy.yaml", &np)
	if np.Spec.PodSelector.MatchLabels["k8s-app"] != "kube-dns" {
		t.Errorf("selects %v", np.Spec.PodSelector.MatchLabels)
	}
	// Each port, and whether it is open to every peer (DNS, metrics,
	// health, ready) or to the cluster's pods only (the report).
	open := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		everyone := len(rule.From) == 0
		for _, peer := range rule.From {
			if peer.NamespaceSelector == nil || peer.IPBlock != nil {
				t.Errorf("a peer beyond the cluster's pods: %+v", peer)
			}
		}
		for _, p := range rule.Ports {
			open[fmt.Sprintf("%d/%s", p.Port.IntValue(), *p.Protocol)] = everyone
		}
	}
	want := map[string]bool{"53/UDP": true, "53/TCP": true, "9153/TCP": true, "8080/TCP": true, "8181/TCP": true, "9254/TCP": false}
	for port, everyone := range want {
		if got, ok := open[port]; !ok || got != everyone {
			t.Errorf("port %s: open %v (open to every peer: %v), want open to every peer: %v", port, ok, got, everyone)
		}
	}
}

func TestMonitors(t *testing.T) {
	var sm monitoringv1.ServiceMonitor
	decode(t, "servicemonitor.yaml", &sm)
	var pm monitoringv1.PodMonitor
	decode(t, "podmonitor.yaml", &pm)
	if sm.Spec.Selector.MatchLabels["k8s-app"] != "kube-dns" || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
		t.Errorf("ServiceMonitor %+v", sm.Spec)
	}
	if pm.Spec.Selector.MatchLabels["k8s-app"] != "kube-dns" || len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port == nil || *pm.Spec.PodMetricsEndpoints[0].Port != "metrics" {
		t.Errorf("PodMonitor %+v", pm.Spec)
	}
}

// TestFleetManifests decodes the fleet's manifests: the Redis the CoreDNS
// replicas share, its Service and NetworkPolicy, and the password's way
// from the Secret to the shared option. (test/e2e's
// TestKubernetesFleetCorefile runs the Corefile with a real Redis.)
func TestFleetManifests(t *testing.T) {
	var cm corev1.ConfigMap
	decode(t, "fleet/coredns-configmap.yaml", &cm)
	var redisDeploy, patch appsv1.Deployment
	decode(t, "fleet/redis.yaml", &redisDeploy)
	decode(t, "fleet/deployment-patch.yaml", &patch)
	var svc corev1.Service
	decode(t, "fleet/redis-service.yaml", &svc)
	var np networkingv1.NetworkPolicy
	decode(t, "fleet/redis-networkpolicy.yaml", &np)

	// The variables Kubernetes sets for a Service of the pod's namespace.
	service := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_")) + "_SERVICE_"
	shared := fmt.Sprintf("shared redis://{$%sHOST}:{$%sPORT} ", service, service)
	if !strings.Contains(cm.Data["Corefile"], shared) || svc.Namespace != cm.Namespace {
		t.Errorf("the Corefile in %s has no %q for the Service %s/%s", cm.Namespace, shared, svc.Namespace, svc.Name)
	}
	env := patch.Spec.Template.Spec.Containers[0].Env
	if len(env) != 1 || !strings.Contains(cm.Data["Corefile"], "password_env "+env[0].Name) ||
		env[0].ValueFrom.SecretKeyRef.Name != "fluxguard-redis" {
		t.Errorf("the password does not reach the shared option: %+v", env)
	}
	if svc.Spec.Selector["app.kubernetes.io/name"] != redisDeploy.Spec.Template.Labels["app.kubernetes.io/name"] ||
		np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != redisDeploy.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Error("the Service or the NetworkPolicy does not select the Redis pods")
	}
	if from := np.Spec.Ingress[0].From; len(from) != 1 || from[0].PodSelector.MatchLabels["k8s-app"] != "kube-dns" {
		t.Errorf("Redis is open to %+v", from)
	}
}
