// Package helm holds values for the official CoreDNS Helm chart that run
// the fluxguard image. Its test renders the chart (testdata/coredns, 1.46.2)
// with them through Helm's own engine, as helm install would, and decodes
// every manifest strictly into the Kubernetes and Prometheus Operator
// types. It is a module of its own, so that the plugin does not depend on
// Helm.
package helm

import (
	"fmt"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The chart, and the manifests the values must agree with.
const (
	chartDir       = "testdata/coredns"
	deploymentFile = "../kubernetes/deployment-patch.yaml"
	configMapFile  = "../kubernetes/coredns-configmap.yaml"
	netPolicyFile  = "../kubernetes/networkpolicy.yaml"
)

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func readValues(t *testing.T) common.Values {
	t.Helper()
	v, err := common.ReadValuesFile("values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestValuesKeys checks that every key of values.yaml is one the chart
// knows: in its default values.yaml, with a value of the same kind, or read
// by its templates (.Values.KEY); the items of a list, such as servers,
// have the keys of the default list's items. Helm itself ignores a key it
// does not know, so a misspelt one would otherwise change nothing, quietly.
func TestValuesKeys(t *testing.T) {
	ch := loadChart(t)
	var templates strings.Builder
	for _, f := range ch.Templates {
		templates.Write(f.Data)
	}
	read := func(key string) bool {
		return regexp.MustCompile(`\.Values\.` + regexp.QuoteMeta(key) + `\b`).MatchString(templates.String())
	}
	var check func(key string, v, def any)
	check = func(key string, v, def any) {
		switch v := v.(type) {
		case map[string]any:
			d, ok := def.(map[string]any)
			if !ok {
				t.Errorf("%s: a map where the chart has %s", key, kind(def))
				return
			}
			if len(d) == 0 {
				return // free-form, as podAnnotations: {}
			}
			for k, sub := range v {
				switch subKey := strings.TrimPrefix(key+"."+k, "."); {
				case d[k] != nil:
					check(subKey, sub, d[k])
				case read(subKey):
				default:
					t.Errorf("%s: the chart has no such value", subKey)
				}
			}
		case []any:
			d, ok := def.([]any)
			if !ok {
				t.Errorf("%s: a list where the chart has %s", key, kind(def))
				return
			}
			if len(d) == 0 {
				return // free-form, as tolerations: []
			}
			item := map[string]any{} // the keys of the chart's items
			for _, it := range d {
				if m, ok := it.(map[string]any); ok {
					mergeKeys(item, m)
				}
			}
			for i, it := range v {
				check(fmt.Sprintf("%s[%d]", key, i), it, item)
			}
		default:
			if _, ok := def.(anyKind); !ok && def != nil && kind(v) != kind(def) {
				t.Errorf("%s: %v (%s) where the chart has %v (%s)", key, v, kind(v), def, kind(def))
			}
		}
	}
	check("", map[string]any(readValues(t)), map[string]any(ch.Values))
}

// mergeKeys adds to dst the keys of src, merging maps and the items of
// lists of maps, so that dst has every key any item has.
func mergeKeys(dst, src map[string]any) {
	for k, v := range src {
		switch v := v.(type) {
		case map[string]any:
			d, _ := dst[k].(map[string]any)
			if d == nil {
				d = map[string]any{}
			}
			mergeKeys(d, v)
			dst[k] = d
		case []any:
			d, _ := dst[k].([]any)
			if len(d) == 0 {
				d = []any{map[string]any{}}
			}
			for _, it := range v {
				if m, ok := it.(map[string]any); ok {
					if dm, ok := d[0].(map[string]any); ok {
						mergeKeys(dm, m)
					}
				}
			}
			dst[k] = d
		default:
			if d, ok := dst[k]; !ok {
				dst[k] = v
			} else if kind(d) != kind(v) {
				dst[k] = anyKind{} // as cache's parameters, 30, and forward's, ". /etc/resolv.conf"
			}
		}
	}
}

// anyKind stands for a value whose kind differs between the chart's items.
type anyKind struct{}

// kind names the YAML kind of a value: number, string, bool, map or list.
func kind(v any) string {
	switch v.(type) {
	case float64, int, int64:
		return "number"
	case string:
		return "string"
	case bool:
		return "bool"
	case map[string]any:
		return "map"
	case []any:
		return "list"
	}
	return "null"
}

// manifests are the objects the chart renders, by kind.
type manifests struct {
	configMaps      []corev1.ConfigMap
	deployments     []appsv1.Deployment
	services        []corev1.Service
	serviceMonitors []monitoringv1.ServiceMonitor
}

// render renders the chart with values.yaml as the release "coredns" in
// kube-system, and decodes each manifest strictly.
func render(t *testing.T) manifests {
	t.Helper()
	ch := loadChart(t)
	vals, err := util.ToRenderValues(ch, readValues(t),
		common.ReleaseOptions{Name: "coredns", Namespace: "kube-system", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	var m manifests
	for _, name := range slices.Sorted(maps.Keys(out)) {
		if path.Ext(name) != ".yaml" {
			continue // NOTES.txt, _helpers.tpl
		}
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(out[name], -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			strict := func(obj any) {
				if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
					t.Errorf("%s: %s: %v\n%s", name, meta.Kind, err, doc)
				}
			}
			switch meta.Kind {
			case "ConfigMap":
				m.configMaps = appendDecoded(m.configMaps, strict)
			case "Deployment":
				m.deployments = appendDecoded(m.deployments, strict)
			case "Service":
				m.services = appendDecoded(m.services, strict)
			case "ServiceMonitor":
				m.serviceMonitors = appendDecoded(m.serviceMonitors, strict)
			case "ClusterRole":
				strict(&rbacv1.ClusterRole{})
			case "ClusterRoleBinding":
				strict(&rbacv1.ClusterRoleBinding{})
			default:
				t.Errorf("%s: a %s, which this test does not know", name, meta.Kind)
			}
		}
	}
	if len(m.configMaps) != 1 || len(m.deployments) != 1 || len(m.services) != 2 || len(m.serviceMonitors) != 1 {
		t.Fatalf("rendered %d ConfigMaps, %d Deployments, %d Services, %d ServiceMonitors; want 1, 1, 2 (DNS, metrics), 1",
			len(m.configMaps), len(m.deployments), len(m.services), len(m.serviceMonitors))
	}
	return m
}

// appendDecoded appends to list the object decode decodes.
func appendDecoded[T any](list []T, decode func(any)) []T {
	var obj T
	decode(&obj)
	return append(list, obj)
}

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

// TestCorefile checks that the chart renders the Corefile of
// deploy/kubernetes's ConfigMap, token for token: test/e2e's
// TestKubernetesCorefile runs that one with the real binary, whose
// fluxguard setup parses it.
func TestCorefile(t *testing.T) {
	m := render(t)
	var cm corev1.ConfigMap
	decode(t, configMapFile, &cm)
	got, want := strings.Fields(m.configMaps[0].Data["Corefile"]), strings.Fields(cm.Data["Corefile"])
	if !slices.Equal(got, want) {
		t.Errorf("the chart renders the Corefile\n%s\nwant the tokens of %s's\n%s", m.configMaps[0].Data["Corefile"], configMapFile, cm.Data["Corefile"])
	}
}

// TestDeployment checks the Deployment the chart renders against
// deploy/kubernetes's patch, which TestDockerfile checks against the
// Dockerfile: the same image, arguments and memory; the Corefile where
// the arguments read it; the DNS and metrics ports; pods that the
// NetworkPolicy keeping the report inside the cluster selects.
func TestDeployment(t *testing.T) {
	m := render(t)
	var patch appsv1.Deployment
	decode(t, deploymentFile, &patch)
	want := patch.Spec.Template.Spec.Containers[0]
	pod := m.deployments[0].Spec.Template
	c := pod.Spec.Containers[0]
	if c.Image != want.Image || !slices.Equal(c.Args, want.Args) || len(c.Command) != 0 {
		t.Errorf("the chart runs %s %q %q; the patch %s %q", c.Image, c.Command, c.Args, want.Image, want.Args)
	}
	mem := corev1.ResourceMemory
	if !c.Resources.Limits[mem].Equal(want.Resources.Limits[mem]) || !c.Resources.Requests[mem].Equal(want.Resources.Requests[mem]) {
		t.Errorf("memory: the chart's %v, the patch's %v", c.Resources, want.Resources)
	}

	// The Corefile -conf names is the ConfigMap's, mounted.
	conf := c.Args[slices.Index(c.Args, "-conf")+1]
	mounted := false
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Spec.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil || v.ConfigMap.Name != m.configMaps[0].Name {
				continue
			}
			for _, it := range v.ConfigMap.Items {
				mounted = mounted || it.Key == "Corefile" && path.Join(vm.MountPath, it.Path) == conf
			}
		}
	}
	if !mounted {
		t.Errorf("%s is not the ConfigMap's Corefile mounted: %+v %+v", conf, c.VolumeMounts, pod.Spec.Volumes)
	}

	for _, p := range []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {ContainerPort: 53, Protocol: corev1.ProtocolTCP}, {ContainerPort: 9153, Protocol: corev1.ProtocolTCP}} {
		if !slices.ContainsFunc(c.Ports, func(q corev1.ContainerPort) bool {
			return q.ContainerPort == p.ContainerPort && q.Protocol == p.Protocol
		}) {
			t.Errorf("no container port %d/%s: %+v", p.ContainerPort, p.Protocol, c.Ports)
		}
	}

	var np networkingv1.NetworkPolicy
	decode(t, netPolicyFile, &np)
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("the pods' labels %v are not selected by %s (%s=%s)", pod.Labels, netPolicyFile, k, v)
		}
	}
}

// TestMetrics checks that the chart's ServiceMonitor scrapes its metrics
// Service, on the prometheus plugin's port.
func TestMetrics(t *testing.T) {
	m := render(t)
	sm := m.serviceMonitors[0]
	var metrics *corev1.Service
	for i, s := range m.services {
		if matches(sm.Spec.Selector.MatchLabels, s.Labels) {
			if metrics != nil {
				t.Errorf("the ServiceMonitor selects the Services %s and %s", metrics.Name, s.Name)
			}
			metrics = &m.services[i]
		}
	}
	if metrics == nil {
		t.Fatalf("the ServiceMonitor selects no Service: %v", sm.Spec.Selector.MatchLabels)
	}
	if len(sm.Spec.Endpoints) != 1 || !slices.ContainsFunc(metrics.Spec.Ports, func(p corev1.ServicePort) bool {
		return p.Name == sm.Spec.Endpoints[0].Port && p.Port == 9153 && p.TargetPort.IntValue() == 9153
	}) {
		t.Errorf("the ServiceMonitor scrapes %+v of the Service's ports %+v, want 9153", sm.Spec.Endpoints, metrics.Spec.Ports)
	}
	if !matches(metrics.Spec.Selector, m.deployments[0].Spec.Template.Labels) {
		t.Errorf("the metrics Service selects %v, not the pods %v", metrics.Spec.Selector, m.deployments[0].Spec.Template.Labels)
	}
}

// matches reports whether labels has every label of selector.
func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}
