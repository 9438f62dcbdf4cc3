package main

import (
	"context"
	"slices"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

func TestSetup(t *testing.T) {
	tests := []struct {
		input   string
		wantErr bool
	}{
		{"passthrough", false},
		{"passthrough extra", true},
		{"passthrough {\n option\n}", true},
	}
	for _, tc := range tests {
		c := caddy.NewTestController("dns", tc.input)
		err := setup(c)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: expected an error %t, got %v", tc.input, tc.wantErr, err)
		}
		if err == nil && len(dnsserver.GetConfig(c).Plugin) != 1 {
			t.Errorf("%q: the plugin was not added", tc.input)
		}
	}
}

func TestInFluxguardsPlace(t *testing.T) {
	got, err := inFluxguardsPlace([]string{"errors", "acl", "cache", "forward"})
	if err != nil || !slices.Equal(got, []string{"errors", "acl", pluginName, "cache", "forward"}) {
		t.Errorf("expected passthrough before cache, got %v, %v", got, err)
	}
	if _, err := inFluxguardsPlace([]string{"errors", "forward"}); err == nil {
		t.Error("expected an error without cache")
	}
}

// TestServeDNS checks that the next plugin answers, with the writer it was given.
func TestServeDNS(t *testing.T) {
	var called bool
	next := plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		called = true
		m := new(dns.Msg)
		m.SetReply(r)
		return dns.RcodeSuccess, w.WriteMsg(m)
	})
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	r := new(dns.Msg)
	r.SetQuestion("example.org.", dns.TypeA)
	if _, err := (passthrough{next}).ServeDNS(context.Background(), rec, r); err != nil || !called || rec.Msg == nil {
		t.Errorf("expected the next plugin's answer, got %v (called %t, err %v)", rec.Msg, called, err)
	}
}
