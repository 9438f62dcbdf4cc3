package fluxguard

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// TestResolveNS checks that with resolve_ns the registered domains of
// suspicious names are resolved through the chain, rate-limited, and that
// their rotating name servers count as NS churn (double flux) even though
// no answer carries an authority section.
func TestResolveNS(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n resolve_ns 1000\n}")
	var nsQueries, glueQueries atomic.Int64
	f.Next = plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg).SetReply(r)
		q := r.Question[0]
		switch {
		case q.Qtype == dns.TypeNS:
			n := nsQueries.Add(1)
			m.Answer = []dns.RR{
				test.NS(fmt.Sprintf("%s 30 IN NS ns%d.dblflux.com.", q.Name, 2*n)),
				test.NS(fmt.Sprintf("%s 30 IN NS ns%d.dblflux.com.", q.Name, 2*n+1)),
			}
		case strings.HasPrefix(q.Name, "ns"): // the name servers sit on bots too
			glueQueries.Add(1)
			m.Answer = []dns.RR{test.A(fmt.Sprintf("%s 30 IN A %d.7.0.1", q.Name, 30+glueQueries.Load()))}
		default:
			// Few networks: the addresses alone never flag the domain.
			for i := range 2 {
				m.Answer = append(m.Answer, test.A(fmt.Sprintf("%s 30 IN A 45.%d.0.%d", q.Name, i, 1+int(r.Id)%200)))
			}
		}
		return dns.RcodeSuccess, w.WriteMsg(m)
	})
	if err := f.start(); err != nil {
		t.Fatal(err)
	}
	defer f.stop()
	ctx := newContext(serverLabel(t))
	id := uint16(0)
	ask := func(name string) {
		id++
		q := newQuery(name, dns.TypeA)
		q.Id = id
		serve(t, ctx, f, q)
	}
	for i := range 8 {
		for range 3 {
			ask(fmt.Sprintf("h%d.dblflux.com.", i))
		}
	}
	for deadline := time.Now().Add(5 * time.Second); nsQueries.Load() < 8; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d NS queries made, want 8", nsQueries.Load())
		}
	}
	// The resolver records the last name servers and their addresses in
	// its own time; the next answer judged after that flags the domain.
	want := engine.ReasonNSChurn | engine.ReasonNSDiversity | engine.ReasonRegisteredDomain
	var v engine.Verdict
	var held bool
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ask("h9.dblflux.com.")
		if v, held = f.eng.Held("any.dblflux.com"); held && v.Reasons&want == want || time.Now().After(deadline) {
			break
		}
	}
	if glueQueries.Load() == 0 {
		t.Error("the name servers' addresses were not resolved")
	}
	if !held || v.Reasons&want != want {
		t.Errorf("Held = %+v (%s), %v; want the registered domain flagged for NS churn", v, v.Reasons, held)
	}
}
