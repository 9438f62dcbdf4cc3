package owner

import (
	"compress/gzip"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	tests := []struct {
		name string
		csv  string
		want map[string]uint32
	}{
		{
			name: "addresses",
			csv: `1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."
1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd
`,
			want: map[string]uint32{"1.0.0.0": 13335, "1.0.0.255": 13335, "1.0.1.0": 0, "1.0.4.0": 38803, "1.0.7.255": 38803, "1.0.8.0": 0, "0.255.255.255": 0},
		},
		{
			name: "integers",
			csv: `16777216,16777471,13335,"Cloudflare, Inc."
16778240,16779263,38803,Gtelecom Pty Ltd
`,
			want: map[string]uint32{"1.0.0.1": 13335, "1.0.5.5": 38803, "1.0.3.0": 0},
		},
		{
			name: "IPv6 by /64",
			csv: `2001:200::,2001:200:1b9:ffff:ffff:ffff:ffff:ffff,2500,WIDE Project
2001:4:112::,2001:4:112:ffff:ffff:ffff:ffff:ffff,112,DNS-OARC
`,
			want: map[string]uint32{"2001:200::": 2500, "2001:200:1b9:ffff::1": 2500, "2001:200:1ba::": 0, "2001:4:112:5::": 112, "2001:4:113::": 0},
		},
		{
			name: "IPv6 integers",
			csv:  "42540488479219738492182115193345540096,42540488479220947418001729822520246271,112,DNS-OARC\n",
			want: map[string]uint32{"2001:4:112::1": 112, "2001:4:111:ffff::": 0},
		},
		{
			name: "both families in one file, unsorted, quoted org with commas",
			csv: `2606:4700::,2606:4700:ffff:ffff:ffff:ffff:ffff:ffff,13335,"Cloudflare, Inc., ""CDN"""
8.8.8.0,8.8.8.255,15169,Google LLC
1.1.1.0,1.1.1.255,13335,"Cloudflare, Inc."
`,
			want: map[string]uint32{"8.8.8.8": 15169, "1.1.1.1": 13335, "2606:4700::1111": 13335, "::ffff:8.8.8.8": 15169, "::ffff:1.1.1.1": 13335},
		},
		{
			name: "overlap: the later start wins",
			csv: `214.95.0.0,215.0.255.255,749,DoD
215.0.0.0,215.1.3.255,721,DoD NIC
10.0.0.0,10.255.255.255,1,wide
10.1.0.0,10.1.255.255,2,nested
10.1.0.0,10.1.0.255,3,nested at the same start
`,
			want: map[string]uint32{"214.255.255.255": 749, "215.0.0.0": 721, "215.1.3.255": 721, "10.0.255.255": 1, "10.1.0.0": 3, "10.1.1.0": 2, "10.2.0.0": 1, "10.255.255.255": 1},
		},
		{
			name: "edges of the address space",
			csv: `0.0.0.0,0.0.0.255,7,first
255.255.255.0,255.255.255.255,8,last
ffff::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,9,last6
`,
			want: map[string]uint32{"0.0.0.0": 7, "255.255.255.255": 8, "255.255.254.255": 0, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": 9},
		},
		{
			name: "header and ASN 0",
			csv:  "start,end,asn,org\n9.9.9.0,9.9.9.255,0,unrouted\n9.9.10.0,9.9.10.255,19281,Quad9\n",
			want: map[string]uint32{"9.9.9.9": 0, "9.9.10.1": 19281},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := ReadCSV(strings.NewReader(tt.csv))
			if err != nil {
				t.Fatal(err)
			}
			for addr, want := range tt.want {
				if got := tb.Lookup(netip.MustParseAddr(addr)); got != want {
					t.Errorf("Lookup(%s) = %d, want %d", addr, got, want)
				}
			}
		})
	}
}

func TestReadCSVErrors(t *testing.T) {
	tests := []struct {
		csv  string
		want string // in the error
	}{
		{"1.0.0.0,1.0.0.255,13335,a\n1.0.1.0,1.0.1.x,5,b\n", "line 2: end"},
		{"1.0.0.0,1.0.0.255,13335,a\n\n1.0.1.0,1.0.1.255,AS5,b\n", "line 3: ASN"},
		{"1.0.0.255,1.0.0.0,13335,a\n", "line 1: start is after end"},
		{"1.0.0.0,::1,13335,a\n", "line 1: start and end"},
		{"1.0.0.0,1.0.0.255\n", "line 1: 2 fields"},
		{"1.0.0.0,1.0.0.255,1,a\n1.0.1.0,1.0.1.255,2,\"unclosed\n", "line 2"},
		{"1,2,3\n1,340282366920938463463374607431768211456,4\n", "line 2: end"},
		{"1.0.0.0,1.0.0.255,4294967296,a\n", "line 1: ASN"},
	}
	for _, tt := range tests {
		_, err := ReadCSV(strings.NewReader(tt.csv))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "owner: ") {
			t.Errorf("ReadCSV(%q) error %v, want one with %q", tt.csv, err, tt.want)
		}
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	v4 := "8.8.8.0,8.8.8.255,15169,Google LLC\n"
	v6 := "2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC\n"
	os.WriteFile(filepath.Join(dir, "asn-ipv4.csv"), []byte(v4), 0o644)
	f, _ := os.Create(filepath.Join(dir, "asn-ipv6.csv.gz"))
	z := gzip.NewWriter(f)
	z.Write([]byte(v6))
	z.Close()
	f.Close()
	for _, path := range []string{dir, filepath.Join(dir, "asn-ipv4.csv"), filepath.Join(dir, "asn-ipv6.csv.gz")} {
		tb, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		n4, n6 := tb.Len()
		if path != dir && n4+n6 != 1 || path == dir && (n4 != 1 || n6 != 1) {
			t.Errorf("Open(%s): %d IPv4 and %d IPv6 ranges", path, n4, n6)
		}
	}
	tb, _ := Open(dir)
	for addr, want := range map[string]uint32{"8.8.8.8": 15169, "2001:4860:4860::8888": 15169, "9.9.9.9": 0} {
		if got := tb.Lookup(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Lookup(%s) = %d, want %d", addr, got, want)
		}
	}
	os.Remove(filepath.Join(dir, "asn-ipv6.csv.gz"))
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "asn-ipv6.csv") {
		t.Errorf("Open of a directory without asn-ipv6.csv: error %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte("x,y,z\n1.1.1.1,1.1.1.2,q\n"), 0o644)
	if _, err := Open(filepath.Join(dir, "bad.csv")); err == nil || !strings.Contains(err.Error(), "bad.csv line 2") {
		t.Errorf("Open of a bad CSV: error %v", err)
	}
	if _, err := Open(filepath.Join(dir, "none.csv")); err == nil {
		t.Error("Open of a missing file: no error")
	}
}

func TestTableAll(t *testing.T) {
	tb, err := ReadCSV(strings.NewReader("1.0.0.0,1.0.0.255,1,a\n1.0.1.0,1.0.1.255,1,a\n2001:db8::,2001:db8::ff,2,b\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r, asn := range tb.All() {
		got = append(got, r[0].String()+"-"+r[1].String()+"="+string(rune('0'+asn)))
	}
	want := []string{"1.0.0.0-1.0.1.255=1", "2001:db8::-2001:db8::ffff:ffff:ffff:ffff=2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("All = %v, want %v", got, want)
	}
}

func TestTableLookupAllocs(t *testing.T) {
	tb, _ := ReadCSV(strings.NewReader("8.8.8.0,8.8.8.255,15169,g\n2001:4860::,2001:4860::ffff,15169,g\n"))
	a, b := netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("2001:4860::1")
	if n := testing.AllocsPerRun(100, func() { tb.Lookup(a); tb.Lookup(b) }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}
