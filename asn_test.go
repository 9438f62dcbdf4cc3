package fluxguard

import (
	"compress/gzip"
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
	cfg, err := parseAndOpen(caddy.NewTestController("dns", "fluxguard {\n asn_db "+path+"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.close()
	for addr, want := range map[string]uint32{"45.1.2.3": 64500, "46.200.0.1": 64501, "47.0.0.1": 0} {
		if got := cfg.engine.ASN(netip.MustParseAddr(addr)); got != want {
			t.Errorf("ASN(%s) = %d, want %d", addr, got, want)
		}
	}
	bad := filepath.Join(t.TempDir(), "not.mmdb")
	os.WriteFile(bad, []byte("not a database"), 0o644)
	for _, p := range []string{bad, "/nonexistent.mmdb"} {
		_, err := parseAndOpen(caddy.NewTestController("dns", "fluxguard {\n asn_db "+p+"\n}"))
		if err == nil || !strings.Contains(err.Error(), "asn_db") || !strings.Contains(err.Error(), "Testfile:2") {
			t.Errorf("asn_db %s: error %v", p, err)
		}
	}
}

// TestASNDatabaseCSV reads ip-location-db ASN tables: a CSV, a gzipped
// CSV, and the npm package's directory.
func TestASNDatabaseCSV(t *testing.T) {
	const v4 = "45.0.0.0,45.255.255.255,64500,\"Example, Inc.\"\n46.0.0.0,46.255.255.255,64501,Example\n"
	const v4num = "754974720,771751935,64500,\"Example, Inc.\"\n771751936,788529151,64501,Example\n"
	const v6 = "2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64502,Example\n"
	gz := func(s string) string {
		var b strings.Builder
		z := gzip.NewWriter(&b)
		z.Write([]byte(s))
		z.Close()
		return b.String()
	}
	tests := []struct {
		name  string
		files map[string]string // written in a new directory
		path  string            // asn_db's argument, in that directory
		want  map[string]uint32
	}{
		{"csv", map[string]string{"asn.csv": v4}, "asn.csv",
			map[string]uint32{"45.1.2.3": 64500, "46.200.0.1": 64501, "47.0.0.1": 0}},
		{"integer csv", map[string]string{"asn-ipv4-num.csv": v4num}, "asn-ipv4-num.csv",
			map[string]uint32{"45.1.2.3": 64500, "46.200.0.1": 64501, "47.0.0.1": 0}},
		{"csv.gz", map[string]string{"asn.csv.gz": gz(v4 + v6)}, "asn.csv.gz",
			map[string]uint32{"45.1.2.3": 64500, "2001:db8::1": 64502, "2001:db9::1": 0}},
		{"npm package directory", map[string]string{"package/asn-ipv4.csv": v4, "package/asn-ipv6.csv": v6}, "package",
			map[string]uint32{"46.200.0.1": 64501, "::ffff:45.0.0.1": 64500, "2001:db8:1::1": 64502, "47.0.0.1": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := parseAndOpen(caddy.NewTestController("dns", "fluxguard {\n asn_db "+filepath.Join(dir, tt.path)+"\n}"))
			if err != nil {
				t.Fatal(err)
			}
			defer cfg.close()
			for addr, want := range tt.want {
				if got := cfg.engine.ASN(netip.MustParseAddr(addr)); got != want {
					t.Errorf("ASN(%s) = %d, want %d", addr, got, want)
				}
			}
		})
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte(v4+"47.0.0.0,47.0.0.x,64503,Bad\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "asn.txt"), []byte(v4), 0o644)
	os.Mkdir(filepath.Join(dir, "half"), 0o755)
	os.WriteFile(filepath.Join(dir, "half", "asn-ipv4.csv"), []byte(v4), 0o644)
	for _, tt := range []struct{ path, want string }{
		{"bad.csv", "bad.csv line 3"},
		{"asn.txt", "neither"},
		{"half", "asn-ipv6.csv"},
		{"none.csv", "no such file"},
	} {
		_, err := parseAndOpen(caddy.NewTestController("dns", "fluxguard {\n asn_db "+filepath.Join(dir, tt.path)+"\n}"))
		if err == nil || !strings.Contains(err.Error(), "asn_db") || !strings.Contains(err.Error(), "Testfile:2") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("asn_db %s: error %v, want one with %q", tt.path, err, tt.want)
		}
	}
}

// parseAndOpen parses c and opens its asn_db, as setup does.
func parseAndOpen(c *caddy.Controller) (config, error) {
	cfg, err := parse(c)
	if err == nil {
		err = cfg.openASN()
	}
	return cfg, err
}
