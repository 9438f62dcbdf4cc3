package fluxguard

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// writeASNDB builds a small GeoLite2-ASN-format database: 45.0.0.0/8 is
// AS64500, 46.0.0.0/8 AS64501.
func writeASNDB(t *testing.T) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, asn := range map[string]uint32{"45.0.0.0/8": 64500, "46.0.0.0/8": 64501} {
		_, n, _ := net.ParseCIDR(cidr)
		rec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(asn), "autonomous_system_organization": mmdbtype.String("Example")}
		if err := w.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "asn.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestASNDatabase(t *testing.T) {
	path := writeASNDB(t)
	cfg, err := parse(caddy.NewTestController("dns", "fluxguard {\n asn_db "+path+"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.closeASN()
	for addr, want := range map[string]uint32{"45.1.2.3": 64500, "46.200.0.1": 64501, "47.0.0.1": 0} {
		if got := cfg.engine.ASN(netip.MustParseAddr(addr)); got != want {
			t.Errorf("ASN(%s) = %d, want %d", addr, got, want)
		}
	}
	bad := filepath.Join(t.TempDir(), "not.mmdb")
	os.WriteFile(bad, []byte("not a database"), 0o644)
	for _, p := range []string{bad, "/nonexistent.mmdb"} {
		_, err := parse(caddy.NewTestController("dns", "fluxguard {\n asn_db "+p+"\n}"))
		if err == nil || !strings.Contains(err.Error(), "asn_db") || !strings.Contains(err.Error(), "Testfile:2") {
			t.Errorf("asn_db %s: error %v", p, err)
		}
	}
}
