package testenv

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Jaeger is a Jaeger of the test's own on loopback, keeping traces in
// memory: it receives spans in Zipkin's format and serves them through
// its query API.
type Jaeger struct {
	// ZipkinURL is where spans are posted: the trace plugin's endpoint.
	ZipkinURL string
	// QueryURL is the query API's base: GET QueryURL/api/traces?service=NAME.
	QueryURL string
}

// jaegerConfig runs Jaeger's Zipkin receiver and its query API only, on
// the ports given, with the memory store.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [zipkin]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memory
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      memory:
        memory:
          max_traces: 1000
receivers:
  zipkin:
    endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory
`

// StartJaeger starts Jaeger (built by scripts/test.sh from test/tools) on
// free loopback ports, and stops it when the test ends. A port found free
// may be taken by another test's server before Jaeger binds it: Jaeger
// then exits, and is started again on other ports.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	for attempt := 1; ; attempt++ {
		j, err := startJaeger(t)
		if err == nil {
			return j
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

// errPortTaken tells that Jaeger exited as a port it was given was taken.
var errPortTaken = errors.New("a port was taken")

// startJaeger is one attempt of StartJaeger.
func startJaeger(t testing.TB) (*Jaeger, error) {
	bin := Tool(t, "jaeger")
	query, grpc, zipkin := FreeAddr(t), FreeAddr(t), FreeAddr(t)
	dir := t.TempDir()
	conf, log := filepath.Join(dir, "jaeger.yaml"), filepath.Join(dir, "jaeger.log")
	if err := os.WriteFile(conf, fmt.Appendf(nil, jaegerConfig, query, grpc, zipkin), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the process has its own descriptor
	cmd := exec.Command(bin, "--config", conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	output := func() string { b, _ := os.ReadFile(log); return string(b) }
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("jaeger's output:\n%s", output())
		}
	})
	j := &Jaeger{ZipkinURL: "http://" + zipkin + "/api/v2/spans", QueryURL: "http://" + query}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err = j.ready(zipkin); err == nil {
			return j, nil
		}
		select {
		case <-exited:
			if strings.Contains(output(), "address already in use") {
				return nil, fmt.Errorf("jaeger: %w:\n%s", errPortTaken, output())
			}
			return nil, fmt.Errorf("jaeger exited:\n%s", output())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("jaeger did not start: %v\n%s", err, output())
		}
	}
}

// ready reports whether the query API answers and the receiver on
// zipkin accepts connections.
func (j *Jaeger) ready(zipkin string) error {
	resp, err := http.Get(j.QueryURL + "/api/services")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("query API: %s", resp.Status)
	}
	c, err := net.Dial("tcp", zipkin)
	if err != nil {
		return err
	}
	return c.Close()
}
