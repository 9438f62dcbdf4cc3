package fluxguard

import (
	"context"
	"fmt"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// TestAbuse checks the threat model: an attacker who controls the answers
// for its own domain cannot get an unrelated name blocked.
func TestAbuse(t *testing.T) {
	const victim = "www.victim.com."
	tests := []struct {
		name   string
		answer func(q dns.Question, n int) (answer, ns []dns.RR)
	}{
		{"flux chain CNAMEd to the victim", func(q dns.Question, n int) ([]dns.RR, []dns.RR) {
			return append([]dns.RR{test.CNAME(q.Name + " 30 IN CNAME " + victim)}, rotating(victim, n)...), nil
		}},
		{"answers owned by the victim's name", func(q dns.Question, n int) ([]dns.RR, []dns.RR) {
			return append(rotating(victim, n), rotating(q.Name, n)...), nil
		}},
		{"name servers naming the victim", func(q dns.Question, n int) ([]dns.RR, []dns.RR) {
			var ns []dns.RR
			for i := range 4 {
				ns = append(ns, test.NS(fmt.Sprintf("victim.com. 30 IN NS ns%d.victim.com.", n*4+i)))
			}
			return rotating(q.Name, n), ns
		}},
		{"random subdomains of the attacker's own domain", func(q dns.Question, n int) ([]dns.RR, []dns.RR) {
			return rotating(q.Name, n), nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newTestFluxguard(t, "fluxguard . {\n profile default\n action block\n block_rcode REFUSED\n}")
			n := 0
			f.Next = plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
				m := new(dns.Msg).SetReply(r)
				if r.Question[0].Name == victim {
					m.Answer = []dns.RR{test.A(victim + " 300 IN A 93.184.216.34")}
				} else {
					m.Answer, m.Ns = tt.answer(r.Question[0], n)
					n++
				}
				return dns.RcodeSuccess, w.WriteMsg(m)
			})
			ctx := newContext(serverLabel(t))
			flagged := false
			for i := range 40 {
				rec, _ := serve(t, ctx, f, newQuery(fmt.Sprintf("x%d.attacker.tk.", i%20), dns.TypeA))
				flagged = flagged || rec.Msg.Rcode == dns.RcodeRefused
				if rec, _ := serve(t, ctx, f, newQuery(victim, dns.TypeA)); rec.Msg.Rcode != dns.RcodeSuccess {
					t.Fatalf("victim blocked after %d attacker answers", i+1)
				}
			}
			if _, held := f.eng.Held("www.victim.com"); held {
				t.Error("victim held")
			}
			if tt.name != "name servers naming the victim" && !flagged {
				t.Error("the attacker's own flux went unflagged")
			}
		})
	}
}

// rotating returns 4 A records for owner from a pool spread over many
// networks, advancing with n.
func rotating(owner string, n int) []dns.RR {
	var rrs []dns.RR
	for i := range 4 {
		k := n*4 + i
		rrs = append(rrs, test.A(fmt.Sprintf("%s 30 IN A %d.%d.0.1", owner, 23+k%180, k)))
	}
	return rrs
}
