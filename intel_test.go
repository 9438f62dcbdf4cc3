package fluxguard

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// writeList writes content to path, and moves its modification time on,
// so that a reload sees the change however fast it comes.
func writeList(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Duration(len(content)) * time.Second)
	os.Chtimes(path, later, later)
}

// TestIntelFiles checks that a name on the domain list is blocked on its
// first query, unless allowed; that listed addresses show as
// known_bad_addr and flag at two in two networks, front doors aside; and
// that both files are reloaded on change, a bad one keeping its previous
// content.
func TestIntelFiles(t *testing.T) {
	dir := t.TempDir()
	domains, addrs := filepath.Join(dir, "domains.txt"), filepath.Join(dir, "addrs.txt")
	writeList(t, domains, "# a feed\nlisted.example\n\n*.wild.example # a comment\n")
	writeList(t, addrs, "45.0.0.1\n2a00:1450:4001::/48 # Google's: a front door\n")
	f, up := newTestFluxguard(t, "fluxguard . {\n action block\n allow partner.listed.example\n intel_domains "+domains+"\n intel_addrs "+addrs+"\n}")
	ctx := newContext(serverLabel(t))

	type step struct {
		name    string
		qtype   uint16
		rcode   int
		reasons string // the fluxguard/reasons label, "<unset>" for none
	}
	run := func(when string, steps []step) {
		t.Helper()
		for _, s := range steps {
			rec, _ := serve(t, ctx, f, newQuery(s.name, s.qtype))
			if rec.Msg.Rcode != s.rcode || meta(ctx, metaReasons) != s.reasons {
				t.Errorf("%s: %s %s answered %s with reasons %q, want %s with %q", when, s.name, dns.TypeToString[s.qtype],
					dns.RcodeToString[rec.Msg.Rcode], meta(ctx, metaReasons), dns.RcodeToString[s.rcode], s.reasons)
			}
		}
	}
	run("at start", []step{
		{"c2.listed.example.", dns.TypeA, dns.RcodeNameError, "intel"},
		{"listed.example.", dns.TypeAAAA, dns.RcodeNameError, "intel"},
		{"a.wild.example.", dns.TypeA, dns.RcodeNameError, "intel"},
		{"www.partner.listed.example.", dns.TypeA, dns.RcodeSuccess, "<unset>"}, // an allow wins
		{"c2.other.tk.", dns.TypeA, dns.RcodeSuccess, "suspicious_tld,short_sld,known_bad_addr"},
		{"c2.other.tk.", dns.TypeAAAA, dns.RcodeSuccess, "suspicious_tld,short_sld,known_bad_addr"}, // the front door does not count
	})
	if n := up.callCount(); n != 3 {
		t.Errorf("upstream asked %d times, want 3: listed names are answered without it", n)
	}

	writeList(t, addrs, "93.184.216.34\n2606:2800:21f::/48\n")
	writeList(t, domains, "other.example\n")
	f.reloadPolicy()
	run("after the reload", []step{
		{"c2.listed.example.", dns.TypeA, dns.RcodeSuccess, "short_sld"}, // tracked now, as any name
		{"x.other.example.", dns.TypeA, dns.RcodeNameError, "intel"},
		{"www.stable.com.", dns.TypeA, dns.RcodeSuccess, "short_sld,known_bad_addr"},
		{"www.stable.com.", dns.TypeAAAA, dns.RcodeNameError, "short_sld,known_bad_addr"}, // two in two networks
		{"www.stable.com.", dns.TypeA, dns.RcodeNameError, "short_sld,known_bad_addr"},    // held
	})

	writeList(t, domains, "ok.example\nthis line is wrong\n")
	writeList(t, addrs, "0.0.0.0/0\n")
	f.reloadPolicy()
	run("after a bad reload", []step{
		{"x.other.example.", dns.TypeA, dns.RcodeNameError, "intel"},
		{"ok.example.", dns.TypeA, dns.RcodeSuccess, "short_sld"},
	})
	if _, held := f.eng.Held("www.stable.com"); !held {
		t.Error("a bad address list dropped the hold")
	}
}

// TestIntelFileErrors checks that a bad line fails the whole file, named
// with the line.
func TestIntelFileErrors(t *testing.T) {
	tests := []struct {
		addrs   bool
		content string
		line    int
		want    string
	}{
		{false, "ok.example\nbad.example extra\n", 2, "want a domain name"},
		{false, "# feed\n192.0.2.1\n", 2, "want a domain name"},
		{false, "http://evil.example/path\n", 1, "want a domain name"},
		{false, "a..example\n", 1, "want a domain name"},
		{false, "ok.example\n\n*\n", 3, "want a domain name"},
		{true, "192.0.2.1\nevil.example\n", 2, "want an IP address or a CIDR prefix"},
		{true, "192.0.2.0/33\n", 1, "want an IP address or a CIDR prefix"},
		{true, "192.0.2.1 198.51.100.1\n", 1, "want an IP address or a CIDR prefix"},
		{true, "# ok\n10.0.0.0/7\n", 2, "wider than /8"},
		{true, "2001::/15\n", 1, "wider than /8 (IPv6 /16)"},
		{true, "::/16\n", 1, "spans the IPv4-mapped addresses"},
		{true, "::ffff:0.0.0.0/95\n", 1, "spans the IPv4-mapped addresses"},
		{true, "::ffff:0.0.0.0/96\n", 1, "0.0.0.0/0 is wider than /8"},
		{true, "::ffff:10.0.0.0/103\n", 1, "10.0.0.0/7 is wider than /8"},
	}
	for i, tt := range tests {
		path := filepath.Join(t.TempDir(), "list.txt")
		writeList(t, path, tt.content)
		in := &intelFile{watchedFile: watchedFile{path: path}, addrs: tt.addrs}
		err := in.read()
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s:%d: ", path, tt.line)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%d: %q: error %v, want %s:%d and %q", i, tt.content, err, path, tt.line, tt.want)
		}
	}
}

// TestIntelFileEntries checks what a list's lines load.
func TestIntelFileEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.txt")
	writeList(t, path, "Evil.Example.\n*.wild.example\n")
	names := &intelFile{watchedFile: watchedFile{path: path}}
	if err := names.read(); err != nil || strings.Join(names.names, " ") != "evil.example wild.example" {
		t.Errorf("names %q, error %v", names.names, err)
	}
	writeList(t, path, "192.0.2.1\n::ffff:198.51.100.7\n2001:db8::1\n203.0.113.77/24\n")
	addrs := &intelFile{watchedFile: watchedFile{path: path}, addrs: true}
	if err := addrs.read(); err != nil || fmt.Sprint(addrs.nets) != "[192.0.2.1/32 198.51.100.7/32 2001:db8::1/128 203.0.113.0/24]" {
		t.Errorf("prefixes %v, error %v", addrs.nets, err)
	}
}

// TestIntelFileBounded checks that a list loads at most maxIntelEntries
// entries, and says how many more it ignored.
func TestIntelFileBounded(t *testing.T) {
	var b strings.Builder
	for i := range maxIntelEntries + 2 {
		fmt.Fprintf(&b, "%d.%d.%d.%d\n", 1+i>>24, byte(i>>16), byte(i>>8), byte(i))
	}
	path := filepath.Join(t.TempDir(), "addrs.txt")
	writeList(t, path, b.String())
	in := &intelFile{watchedFile: watchedFile{path: path}, addrs: true}
	if err := in.read(); err != nil {
		t.Fatal(err)
	}
	if len(in.nets) != maxIntelEntries || in.cut != 2 || !strings.Contains(in.loaded(), "2 more beyond the first 1000000 ignored") {
		t.Errorf("loaded %d, cut %d: %s", len(in.nets), in.cut, in.loaded())
	}
}

// TestIntelParseErrors checks that a bad list fails setup with an error
// that names the option, the Corefile's line and the list's. A public
// suffix is refused, as a prefix wider than /8 is: one stray line of a
// feed would block every domain under it.
func TestIntelParseErrors(t *testing.T) {
	for _, tc := range []struct {
		option, third, want string
	}{
		{"intel_domains", "198.51.100.0/24", ":3: want a domain name"},
		{"intel_addrs", "198.51.100.0/24", ":2: want an IP address"},
		{"intel_domains", "com", ":3: com is a public suffix"},
		{"intel_domains", "*.com", ":3: com is a public suffix"},
		{"intel_domains", "co.uk", ":3: co.uk is a public suffix"},
		{"intel_domains", "github.io", ":3: github.io is a public suffix"},
		{"intel_domains", "evil", ":3: evil is a public suffix"},
	} {
		t.Run(tc.option+" "+tc.third, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "list.txt")
			writeList(t, path, "# feed\nevil.example\n"+tc.third+"\n")
			testParseError(t, "fluxguard {\n\twindow 5m\n\t"+tc.option+" "+path+"\n}", tc.option, path+tc.want)
		})
	}
	// A registered domain, or a name under a public suffix, is taken.
	path := filepath.Join(t.TempDir(), "list.txt")
	writeList(t, path, "evil.tk\nc2.evil.co.uk\n*.user.github.io\n")
	in := &intelFile{watchedFile: watchedFile{path: path}}
	if err := in.read(); err != nil || len(in.names) != 3 {
		t.Errorf("read: %v, names %v", err, in.names)
	}
}
