package fluxguard

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
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
				test.NS(fmt.Sprintf("%s 1 IN NS ns%d.dblflux.com.", q.Name, 2*n)),
				test.NS(fmt.Sprintf("%s 1 IN NS ns%d.dblflux.com.", q.Name, 2*n+1)),
			}
		case strings.HasPrefix(q.Name, "ns"): // the name servers sit on bots too
			glueQueries.Add(1)
			m.Answer = []dns.RR{test.A(fmt.Sprintf("%s 30 IN A %d.7.0.1", q.Name, 30+glueQueries.Load()%200))}
		default:
			// Few networks: the addresses alone never flag the domain.
			for i := range 2 {
				m.Answer = append(m.Answer, test.A(fmt.Sprintf("%s 30 IN A 45.%d.0.%d", q.Name, i, 1+int(r.Id)%200)))
			}
		}
		return dns.RcodeSuccess, w.WriteMsg(m)
	})
	f.resolver.minRecheck = 0 // resolved again as the TTL (1 s) passes: a set a second
	ask := startAsking(t, f)
	// Each name is asked once its domain's last resolution is under way
	// (a domain waits in the queue once), until the name servers' rotation
	// flags a name at once, without its becoming suspicious first. A name
	// asked before the TTL has passed makes no resolution: new names are
	// asked until four were made.
	for i, deadline := 0, time.Now().Add(30*time.Second); nsQueries.Load() < 4 && time.Now().Before(deadline); i++ {
		before := nsQueries.Load()
		for range 3 {
			ask(fmt.Sprintf("h%d.dblflux.com.", i))
		}
		for deadline := time.Now().Add(2 * time.Second); nsQueries.Load() == before && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if n := nsQueries.Load(); n < 4 {
		t.Fatalf("%d NS queries made in 30 s, want at least 4", n)
	}
	// The resolver records the last name servers and their addresses in
	// its own time; the next answer judged after that flags the domain.
	want := engine.ReasonNSChurn | engine.ReasonNSDiversity | engine.ReasonRegisteredDomain
	var v engine.Verdict
	var held bool
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ask("last.dblflux.com.")
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

// TestResolveNSOneName checks that the name servers resolve_ns learns
// count for the names that asked, not only for their registered domain's
// aggregate, which needs two names under the domain and which a name that
// is its registered domain has none of; a suspicious name's domain is
// resolved again (after recheck), so that one name shows the rotation.
func TestResolveNSOneName(t *testing.T) {
	for _, tc := range []struct {
		what  string
		names []string // the flux names asked
	}{
		{"two names under the domain", []string{"h1.dblflux.com.", "h2.dblflux.com."}},
		{"one name under the domain", []string{"login.dblflux.com."}},
		{"the registered domain itself", []string{"dblflux.com."}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n resolve_ns 1000\n}")
			var nsQueries atomic.Int64
			f.Next = plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				m := new(dns.Msg).SetReply(r)
				q := r.Question[0]
				switch q.Qtype {
				case dns.TypeNS: // two name servers at a time, rotating, glue in their own networks
					n := int(nsQueries.Add(1))
					for i := range 2 {
						ns := fmt.Sprintf("ns%d.dblflux.com.", 2*n+i)
						m.Answer = append(m.Answer, test.NS(fmt.Sprintf("%s 1 IN NS %s", q.Name, ns)))
						m.Extra = append(m.Extra, test.A(fmt.Sprintf("%s 30 IN A %d.7.0.1", ns, 30+2*n+i)))
					}
				case dns.TypeA: // two networks: the addresses alone never flag it
					for i := range 2 {
						m.Answer = append(m.Answer, test.A(fmt.Sprintf("%s 30 IN A 45.%d.0.%d", q.Name, i, 1+int(r.Id)%200)))
					}
				}
				return dns.RcodeSuccess, w.WriteMsg(m)
			})
			f.resolver.minRecheck = 0 // each suspicious answer asks again once the TTL (1 s) has passed
			ask := startAsking(t, f)
			for _, name := range tc.names {
				for range 4 {
					ask(name)
				}
			}
			first := engine.Normalize(tc.names[0])
			want := engine.ReasonNSChurn | engine.ReasonNSDiversity
			var d engine.Detail
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				ask(tc.names[0]) // judged again after the resolutions, a second or more apart
				if d, _ = f.eng.Detail(first); d.Verdict.Reasons&want == want {
					break
				}
			}
			if nsQueries.Load() == 0 {
				t.Fatal("no NS query made")
			}
			if d.Verdict.Reasons&want != want {
				t.Errorf("%d resolutions of rotating name servers; %s shows %s, score %v", nsQueries.Load(), first, d.Verdict.Reasons, d.Verdict.Score)
			}
		})
	}
}

// TestResolveNSQueueOncePerDomain checks that a domain waits for
// resolution once, however many of its names become suspicious: a spray
// of random subdomains under one domain must not crowd the others out.
func TestResolveNSQueueOncePerDomain(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n resolve_ns\n}")
	r := f.resolver // not started: nothing is taken off the queue
	ctx := context.Background()
	for i := range 200 {
		r.enqueue(ctx, fmt.Sprintf("r%d.spray.example", i))
	}
	r.enqueue(ctx, "login.dblflux.com")
	queued := map[string]int{}
	for len(r.queue) > 0 {
		queued[(<-r.queue).domain]++
	}
	if len(queued) != 2 || queued["dblflux.com"] != 1 || queued["spray.example"] != 1 {
		t.Errorf("queued after 200 names of spray.example and one of dblflux.com: %v; want each domain once", queued)
	}
	if names := r.asked("spray.example"); len(names) != maxNamesPerDomain || names[0] != "r0.spray.example" {
		t.Errorf("names that asked for spray.example: %v, want the first %d", names, maxNamesPerDomain)
	}
	// Resolved, spray.example waits for its NS records' TTL, within the
	// bounds, before it is queued again.
	for _, tc := range []struct {
		ttl, wait time.Duration
	}{{30 * time.Second, 30 * time.Second}, {0, nsRecheckMin}, {time.Hour, nsRecheckMax}} {
		r.resolved("spray.example", tc.ttl)
		if r.enqueue(ctx, "r1.spray.example"); len(r.queue) != 0 {
			t.Fatalf("TTL %v: spray.example queued again at once", tc.ttl)
		}
		if wait := time.Until(r.again["spray.example"]); wait < tc.wait-time.Second || wait > tc.wait {
			t.Errorf("TTL %v: resolved again in %v, want %v", tc.ttl, wait, tc.wait)
		}
	}
	r.again["spray.example"] = time.Now()
	if r.enqueue(ctx, "r1.spray.example"); len(r.queue) != 1 {
		t.Errorf("spray.example not queued again once its time came")
	}
}

// TestResolveNSStableZone checks that the name servers resolve_ns records
// on a name count only when they rotate: a zone served by a stable set of
// 8 name servers in 8 networks (a large DNS provider, or two at once) must
// not get a benign name flagged.
func TestResolveNSStableZone(t *testing.T) {
	for _, servers := range []int{4, 8} {
		t.Run(fmt.Sprintf("%d stable name servers", servers), func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n action block\n resolve_ns 1000\n}")
			var nsQueries atomic.Int64
			f.Next = plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				m := new(dns.Msg).SetReply(r)
				q := r.Question[0]
				switch q.Qtype {
				case dns.TypeNS: // the same servers every time, their addresses with them
					nsQueries.Add(1)
					stableNS(m, q.Name, servers)
				case dns.TypeA:
					stableA(m, q.Name)
				}
				return dns.RcodeSuccess, w.WriteMsg(m)
			})
			f.resolver.minRecheck, f.resolver.maxRecheck = 0, 0 // resolved again and again: the same set each time
			if err := f.start(); err != nil {
				t.Fatal(err)
			}
			defer f.stop()
			_, rec, d := askAroundResolution(t, f, "www.bigbank.com.", &nsQueries, 100*time.Millisecond)
			if rec.Msg == nil || rec.Msg.Rcode != dns.RcodeSuccess || d.Verdict.Level == engine.LevelFlagged {
				t.Errorf("a fixed set of 6 addresses in 2 networks, TTL 300, under a zone with %d stable name servers: %v %s score %v, answer rcode %s",
					servers, d.Verdict.Level, d.Verdict.Reasons, d.Verdict.Score, dns.RcodeToString[rec.Msg.Rcode])
			}
		})
	}
}

// TestResolveNSDelegatedSubzone checks a benign name in a delegated
// subzone with resolve_ns: its answers carry the subzone's 4 name servers
// (Route 53's), resolve_ns its registered domain's 8 (Akamai's). Both sets
// are stable: the name is neither flagged nor blocked.
func TestResolveNSDelegatedSubzone(t *testing.T) {
	f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n action block\n resolve_ns 1000\n}")
	var nsQueries atomic.Int64
	f.Next = plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg).SetReply(r)
		q := r.Question[0]
		switch q.Qtype {
		case dns.TypeNS: // bigbank.com: the same 8 servers every time, with glue
			nsQueries.Add(1)
			stableNS(m, q.Name, 8)
		case dns.TypeA: // the subzone's NS in authority
			stableA(m, q.Name)
			for _, ns := range []string{"ns-1.awsdns-01.org.", "ns-2.awsdns-02.co.uk.", "ns-3.awsdns-03.com.", "ns-4.awsdns-04.net."} {
				m.Ns = append(m.Ns, test.NS("shop.bigbank.com. 3600 IN NS "+ns))
			}
		}
		return dns.RcodeSuccess, w.WriteMsg(m)
	})
	if err := f.start(); err != nil {
		t.Fatal(err)
	}
	defer f.stop()
	// The next answers come a second after the resolution: another set.
	before, rec, d := askAroundResolution(t, f, "www.shop.bigbank.com.", &nsQueries, 1100*time.Millisecond)
	if rec.Msg == nil || rec.Msg.Rcode != dns.RcodeSuccess || d.Verdict.Level == engine.LevelFlagged {
		t.Errorf("stable name under a delegated subzone (4 stable NS) of a domain with 8 stable NS: before resolve_ns %v %s score %v; after %v %s score %v, answer rcode %s",
			before.Verdict.Level, before.Verdict.Reasons, before.Verdict.Score,
			d.Verdict.Level, d.Verdict.Reasons, d.Verdict.Score, dns.RcodeToString[rec.Msg.Rcode])
	}
}

// stableNS answers m, for zone, with a stable set of n name servers in n
// networks (Akamai's), their addresses as glue.
func stableNS(m *dns.Msg, zone string, n int) {
	for i := range n {
		ns := fmt.Sprintf("a%d-64.akam.net.", i+1)
		m.Answer = append(m.Answer, test.NS(fmt.Sprintf("%s 3600 IN NS %s", zone, ns)))
		m.Extra = append(m.Extra, test.A(fmt.Sprintf("%s 3600 IN A %d.%d.0.64", ns, 23+i*10, 61+i)))
	}
}

// stableA answers m, for name, with a benign multi-address set: a fixed
// 6 addresses in 2 networks, TTL 300.
func stableA(m *dns.Msg, name string) {
	for i := range 6 {
		m.Answer = append(m.Answer, test.A(fmt.Sprintf("%s 300 IN A 104.%d.0.%d", name, 64+i%2, 10+i)))
	}
}

// startAsking starts f, and returns a function asking it for a name's A
// records, each query with a new id (the upstreams above answer by it).
func startAsking(t *testing.T, f *Fluxguard) (ask func(name string)) {
	t.Helper()
	if err := f.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.stop() })
	ctx := newContext(serverLabel(t))
	id := uint16(0)
	return func(name string) {
		id++
		q := newQuery(name, dns.TypeA)
		q.Id = id
		serve(t, ctx, f, q)
	}
}

// askAroundResolution asks f, started, for name until it is a candidate,
// whose domain resolve_ns resolves, waits for the NS query (nsQueries
// counts them) and pause more for the resolver to record it, asks again,
// and returns the name's detail before and after, and the last answer.
func askAroundResolution(t *testing.T, f *Fluxguard, name string, nsQueries *atomic.Int64, pause time.Duration) (before engine.Detail, rec *dnstest.Recorder, after engine.Detail) {
	t.Helper()
	ctx := newContext(serverLabel(t))
	for range 4 {
		serve(t, ctx, f, newQuery(name, dns.TypeA))
	}
	before, _ = f.eng.Detail(engine.Normalize(name))
	for deadline := time.Now().Add(3 * time.Second); nsQueries.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(pause)
	for range 3 {
		rec, _ = serve(t, ctx, f, newQuery(name, dns.TypeA))
	}
	if nsQueries.Load() == 0 {
		t.Fatal("no NS query made")
	}
	after, _ = f.eng.Detail(engine.Normalize(name))
	return before, rec, after
}
