package fluxguard

import (
	"bytes"
	golog "log"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/fluxguard/fluxguard/internal/engine"
)

// TestPolicyFiles checks that allow and deny files apply at start and are
// reloaded on change, and that a bad file keeps the previous content.
func TestPolicyFiles(t *testing.T) {
	dir := t.TempDir()
	allow, deny := filepath.Join(dir, "allow.txt"), filepath.Join(dir, "deny.txt")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		// Make the change visible to a modification-time check.
		later := time.Now().Add(time.Duration(len(content)) * time.Second)
		os.Chtimes(path, later, later)
	}
	write(allow, "# partners\npartner.example\n13.32.0.0/15\n45.0.0.9\n.partner2.example\n")
	write(deny, "known-bad.tk until 2099-01-01\n")
	f, _ := newTestFluxguard(t, "fluxguard . {\n action block\n allow_file "+allow+"\n deny_file "+deny+"\n}")

	if _, held := f.eng.Held("www.known-bad.tk"); !held {
		t.Error("deny file not applied")
	}
	if v := f.eng.Observe(&engine.Observation{Name: "www.partner2.example", Addrs: []netip.Addr{netip.MustParseAddr("45.0.0.1")}}); v.Skip != engine.SkipAllowed {
		t.Errorf("a leading-dot allow line not applied: %s", v.Skip)
	}
	if v := f.eng.Observe(&engine.Observation{Name: "x.example", Addrs: []netip.Addr{netip.MustParseAddr("45.0.0.9")}}); v.Skip != engine.SkipAllowed {
		t.Errorf("an address allow line not applied: %s", v.Skip)
	}
	ctx := newContext(serverLabel(t))
	for range 3 {
		serve(t, ctx, f, newQuery("c2.evil.tk.", dns.TypeA))
	}
	if _, held := f.eng.Held("c2.evil.tk"); !held {
		t.Fatal("c2.evil.tk not flagged")
	}

	write(allow, "partner.example\nevil.tk until 2099-01-01\n")
	f.reloadPolicy()
	if _, held := f.eng.Held("c2.evil.tk"); held {
		t.Error("allow file change not applied")
	}
	if rec, _ := serve(t, ctx, f, newQuery("c2.evil.tk.", dns.TypeA)); rec.Msg.Rcode != dns.RcodeSuccess {
		t.Errorf("allowed name answered %s", dns.RcodeToString[rec.Msg.Rcode])
	}

	var logged bytes.Buffer
	golog.SetOutput(&logged)
	defer golog.SetOutput(os.Stderr)
	write(deny, "this line is wrong\n")
	f.reloadPolicy()
	if _, held := f.eng.Held("www.known-bad.tk"); !held {
		t.Error("a bad deny file dropped the previous deny list")
	}
	if !strings.Contains(logged.String(), "policy file not reloaded: "+deny+":1") {
		t.Errorf("the bad deny file was not reported with its line:\n%s", logged.String())
	}
	write(deny, "other-bad.tk\n")
	f.reloadPolicy()
	if _, held := f.eng.Held("www.other-bad.tk"); !held {
		t.Error("the deny file, good again, not applied")
	}
	if _, held := f.eng.Held("www.known-bad.tk"); held {
		t.Error("the deny file's old list still applies")
	}
}

// TestPolicyFileErrors checks that a bad line is refused, naming the file,
// the line and what is wanted there.
func TestPolicyFileErrors(t *testing.T) {
	tests := []struct {
		name, content string
		allow         bool
		want          string
	}{
		{"bad time", "ok.example\nbad.example until never\n", true, `:2: "never" is not an RFC 3339 time or a YYYY-MM-DD date; want 'NAME [until TIME]' or a CIDR prefix`},
		{"CIDR in a deny file", "bad.example\n# nets\n192.0.2.0/24\n", false, ":3: a CIDR prefix is only allowed, not denied"},
		{"two names in a deny file", "bad.example worse.example\n", false, ":1: one name a line; want 'NAME [until TIME]'"},
		{"wildcard in an allow file", "ok.example\n*.partner.example\n", true, `:2: "*.partner.example": a rule covers its name's subdomains already; write "partner.example"; want 'NAME [until TIME]' or a CIDR prefix`},
		{"a prefix over the mapped addresses", "ok.example\n::/16\n", true, ":2: ::/16 spans the IPv4-mapped addresses"},
		{"a line over 64 KiB", "ok.example\nok2.example\n" + strings.Repeat("a", 70_000) + ".example\n", true, ":3: a line longer than 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "list.txt")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			pf := &policyFile{watchedFile: watchedFile{path: path}, allow: tc.allow}
			if err := pf.read(); err == nil || !strings.Contains(err.Error(), path+tc.want) {
				t.Errorf("Expected an error with %q, got %v", path+tc.want, err)
			}
		})
	}
}

// TestAllowNetsMapped checks that an allowed network written IPv4-mapped,
// in allow_nets or an allow file, is read as the IPv4 network it is:
// answers' IPv4 addresses are matched as IPv4.
func TestAllowNetsMapped(t *testing.T) {
	for _, line := range []string{"93.184.215.0/24", "::ffff:93.184.215.0/120", "::ffff:93.184.215.14"} {
		t.Run(line, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "allow.txt")
			writeList(t, path, line+"\n")
			options := []string{"allow_file " + path}
			if strings.Contains(line, "/") {
				options = append(options, "allow_nets "+line)
			}
			for _, opt := range options {
				f, _ := newTestFluxguard(t, "fluxguard . {\n action block\n "+opt+"\n}")
				v := f.eng.Observe(&engine.Observation{Name: "www.partner.example", Addrs: []netip.Addr{netip.MustParseAddr("93.184.215.14")}})
				if v.Skip != engine.SkipAllowed {
					t.Errorf("%s: an answer of 93.184.215.14 is %q, want allowed", opt, v.Skip)
				}
			}
		})
	}
}
