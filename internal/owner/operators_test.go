package owner

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fluxguard/fluxguard/internal/testenv"
)

// required are the operators the table must have, with the least number of
// IPv4 /16s each spans.
var required = []struct {
	id    string
	asn   uint32
	min16 int
}{
	{"amazon", 16509, 1000},
	{"google", 15169, 300},
	{"microsoft", 8075, 500},
	{"oracle", 31898, 200},
	{"alibaba", 45102, 100},
	{"tencent", 132203, 100},
	{"ibm", 36351, 100},
	{"digitalocean", 14061, 50},
	{"akamai", 20940, 200},
	{"ovh", 16276, 200},
	{"hetzner", 24940, 50},
	{"cloudflare", 13335, 200},
	{"fastly", 54113, 20},
	{"apple", 714, 200},
}

// others are the smaller operators the simulation draws on.
var others = []string{
	"vultr", "leaseweb", "m247", "contabo", "scaleway", "hostinger", "selectel", "timeweb",
	"datacamp", "bunny", "gcore", "stackpath", "edgio", "imperva", "stark", "aeza", "pqhosting",
}

func TestOperators(t *testing.T) {
	ops := Operators()
	byID := map[string]Operator{}
	for _, o := range ops {
		if _, dup := byID[o.ID]; dup || o.ID == "" || o.ID != strings.ToLower(o.ID) || o.Name == "" || o.ASN == 0 {
			t.Errorf("bad or repeated operator %+v", o)
		}
		byID[o.ID] = o
		if got, ok := OperatorOfASN(o.ASN); !ok || got.ASN != o.ASN {
			t.Errorf("OperatorOfASN(%d) = %+v, %v; want %s's network", o.ASN, got, ok, o.ID)
		}
	}
	for _, r := range required {
		if o, ok := byID[r.id]; !ok || o.ASN != r.asn {
			t.Errorf("operator %s: %+v, want primary ASN %d", r.id, o, r.asn)
		}
	}
	for _, id := range others {
		if _, ok := byID[id]; !ok {
			t.Errorf("no operator %s", id)
		}
		if len(Ranges(id)) == 0 {
			t.Errorf("Ranges(%s) is empty", id)
		}
	}
	if Ranges("nope") != nil {
		t.Error("Ranges of an unknown id is not nil")
	}
	if !slices.Equal(Ranges("pqhosting"), Ranges("stark")) || byID["pqhosting"].ASN != byID["stark"].ASN {
		t.Error("pqhosting is not stark's network")
	}
	ops[0].ID = "changed"
	if Operators()[0].ID == "changed" {
		t.Error("Operators returns the table itself")
	}
}

// spread returns one address in each of up to n distinct IPv4 /16s that
// the operator's ranges touch, evenly picked, and the number of /16s.
func spread(id string, n int, rng *rand.Rand) ([]netip.Addr, int) {
	type part struct{ lo, hi uint32 }
	var parts []part
	for _, r := range Ranges(id) {
		if !r[0].Is4() {
			continue
		}
		lo, hi := u32(r[0]), u32(r[1])
		for p := lo >> 16; p <= hi>>16; p++ {
			a, b := max(lo, p<<16), min(hi, p<<16|0xffff)
			if len(parts) > 0 && parts[len(parts)-1].lo>>16 == p {
				continue // the /16 has an address already
			}
			parts = append(parts, part{a, b})
		}
	}
	var out []netip.Addr
	for i := range min(n, len(parts)) {
		p := parts[i*len(parts)/min(n, len(parts))]
		out = append(out, addr4(p.lo+uint32(rng.Int64N(int64(p.hi-p.lo)+1))))
	}
	return out, len(parts)
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// TestOperatorSpansOneNetwork draws addresses from 50 distinct /16s of each
// operator (all of them when it has fewer) and checks that they make one
// network.
func TestOperatorSpansOneNetwork(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lookup := Lookup(nil)
	for _, r := range required {
		addrs, n16 := spread(r.id, 50, rng)
		if n16 < r.min16 {
			t.Errorf("%s spans %d /16s, want at least %d", r.id, n16, r.min16)
		}
		for _, a := range addrs {
			if got := lookup(a); got != r.asn {
				t.Errorf("%s: Lookup(nil)(%s) = %d, want %d", r.id, a, got, r.asn)
			}
			if o, ok := OperatorOf(a); !ok || o.ID != r.id {
				t.Errorf("%s: OperatorOf(%s) = %+v, %v", r.id, a, o, ok)
			}
		}
	}
}

func TestOperatorOf(t *testing.T) {
	// Each address checked against ip-location-db asn 2.3.2026061719.
	tests := []struct {
		addr string
		want string // operator id, "" for none
	}{
		{"8.8.8.8", "google"},              // AS15169
		{"35.190.0.1", "google"},           // AS396982, Google Cloud
		{"2001:4860:4860::8888", "google"}, // AS15169
		{"1.1.1.1", "cloudflare"},
		{"104.16.0.1", "cloudflare"},
		{"2606:4700:4700::1111", "cloudflare"},
		{"52.95.1.1", "amazon"},    // AS16509
		{"3.5.1.1", "amazon"},      // AS14618
		{"2600:1f18::1", "amazon"}, // AS14618
		{"2a05:d014::1", "amazon"}, // AS16509
		{"20.1.1.1", "microsoft"},  // Azure, AS8075
		{"13.107.42.14", "microsoft"},
		{"2620:1ec:c11::200", "microsoft"},
		{"17.253.1.1", "apple"}, // AS714
		{"17.253.2.1", "apple"}, // AS6185
		{"151.101.1.1", "fastly"},
		{"185.199.108.153", "fastly"},
		{"2a04:4e42::1", "fastly"},
		{"23.1.1.1", "akamai"},    // AS16625
		{"172.104.0.1", "akamai"}, // Linode, AS63949
		{"129.146.1.1", "oracle"},
		{"158.101.0.1", "oracle"},
		{"47.88.0.1", "alibaba"},
		{"43.128.0.1", "tencent"},
		{"169.45.0.1", "ibm"},
		{"104.131.0.1", "digitalocean"},
		{"51.38.0.1", "ovh"},
		{"2001:41d0::1", "ovh"},
		{"5.9.0.1", "hetzner"},
		{"2a01:4f8::1", "hetzner"},
		{"45.32.0.1", "vultr"},
		{"185.93.1.1", "datacamp"},
		{"92.223.1.1", "gcore"},
		{"192.230.64.1", "imperva"},
		{"194.62.42.206", "stark"}, // WorkTitans B.V.
		{"::ffff:8.8.8.8", "google"},
		{"73.0.0.1", ""},   // Comcast
		{"86.128.0.1", ""}, // BT
		{"2601::1", ""},    // Comcast
		{"2a03:2880::1", "meta"},
		{"157.240.1.1", "meta"},
		{"45.57.0.1", "netflix"},
		{"98.137.11.163", "yahoo"},
		{"77.88.55.88", "yandex"},
		{"38.99.124.1", "zoom"},
		{"140.82.112.3", "github"},
		{"208.80.154.224", "wikimedia"},
		{"212.227.0.1", ""}, // IONOS
		{"10.0.0.1", ""},
		{"127.0.0.1", ""},
		{"::1", ""},
	}
	for _, tt := range tests {
		o, ok := OperatorOf(netip.MustParseAddr(tt.addr))
		if o.ID != tt.want || ok != (tt.want != "") {
			t.Errorf("OperatorOf(%s) = %q, %v; want %q", tt.addr, o.ID, ok, tt.want)
		}
	}
	if _, ok := OperatorOf(netip.Addr{}); ok {
		t.Error("OperatorOf(zero Addr) found an operator")
	}
}

func TestOperatorOfASN(t *testing.T) {
	tests := []struct {
		asn  uint32
		want string
	}{
		{16509, "amazon"}, {14618, "amazon"}, {8987, "amazon"},
		{396982, "google"}, {36040, "google"},
		{8068, "microsoft"}, {63949, "akamai"}, {48337, "akamai"},
		{44477, "stark"}, {209847, "stark"},
		{20473, "vultr"}, {60068, "datacamp"}, {200325, "bunny"}, {199524, "gcore"},
		{22822, "edgio"}, {19551, "imperva"}, {210644, "aeza"},
		// Look-alikes.
		{16591, ""},  // Google Fiber
		{151231, ""}, // GOOGLE CHINA INFOTECH OU
		{267242, ""}, // AMAZONIA TELECOMUNICACOES
		{274698, ""}, // AMAZON TELECOM LTDA
		{133082, ""}, // FIBMESH
		{136716, ""}, // APPLE BROADBAND SERVICES
		{400506, ""}, // Black Apple
		{151613, ""}, // Shanghai Pineapple Cloud Computing
		{5065, ""},   // Bunny Communications
		{50446, ""},  // Datacampus SAS
		{7922, ""}, {0, ""},
	}
	for _, tt := range tests {
		o, ok := OperatorOfASN(tt.asn)
		if o.ID != tt.want || ok != (tt.want != "") {
			t.Errorf("OperatorOfASN(%d) = %q, %v; want %q", tt.asn, o.ID, ok, tt.want)
		}
	}
}

func TestLookup(t *testing.T) {
	full := func(a netip.Addr) uint32 {
		switch a.String() {
		case "192.0.2.1":
			return 14618 // an Amazon ASN the embedded table does not place here
		case "73.0.0.1":
			return 7922
		}
		return 0
	}
	tests := []struct {
		addr      string
		withFull  uint32
		withoutIt uint32
	}{
		{"8.8.8.8", 15169, 15169},
		{"3.5.1.1", 16509, 16509},
		{"194.62.42.206", 44477, 44477},
		{"192.0.2.1", 16509, 0},
		{"73.0.0.1", 7922, 0},
		{"198.51.100.1", 0, 0},
	}
	with, without := Lookup(full), Lookup(nil)
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		if got := with(a); got != tt.withFull {
			t.Errorf("Lookup(full)(%s) = %d, want %d", a, got, tt.withFull)
		}
		if got := without(a); got != tt.withoutIt {
			t.Errorf("Lookup(nil)(%s) = %d, want %d", a, got, tt.withoutIt)
		}
	}
}

func TestOperatorAllocs(t *testing.T) {
	lookup := Lookup(nil)
	addrs := []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("73.0.0.1"), netip.MustParseAddr("2a01:4f8::1")}
	if n := testing.AllocsPerRun(100, func() {
		for _, a := range addrs {
			OperatorOf(a)
			lookup(a)
		}
		OperatorOfASN(14618)
	}); n != 0 {
		t.Errorf("lookups allocate %v times", n)
	}
}

func TestDecodeOperatorsErrors(t *testing.T) {
	good := operatorsBin
	if _, err := decodeOperators(good); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{nil, []byte("FGOP\x02"), good[:len(good)/2], good[:len(good)-1], append(slices.Clone(good), 0)} {
		if _, err := decodeOperators(b); err == nil || !strings.HasPrefix(err.Error(), "owner: operators.bin") {
			t.Errorf("decode of %d bytes: error %v", len(b), err)
		}
	}
}

// fullTable loads the dataset that FLUXGUARD_ASN_DATA names, once.
var fullTable = sync.OnceValues(func() (*Table, error) { return Open(os.Getenv("FLUXGUARD_ASN_DATA")) })

// needData returns the full dataset, or skips tb without it (see testenv).
func needData(tb testing.TB) *Table {
	tb.Helper()
	testenv.ASNData(tb)
	t, err := fullTable()
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// TestFullDataset checks the embedded table against the dataset it was made
// from: addresses drawn from the embedded ranges have an ASN of the same
// operator, and every dataset range of an operator's ASN is in the table.
func TestFullDataset(t *testing.T) {
	full := needData(t)
	var all [][2]netip.Addr
	for _, o := range Operators() {
		if o.ID != "pqhosting" {
			all = append(all, Ranges(o.ID)...)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		r := all[rng.IntN(len(all))]
		a := r[0]
		if a.Is4() {
			a = addr4(u32(r[0]) + uint32(rng.Int64N(int64(u32(r[1])-u32(r[0]))+1)))
		} else {
			lo, hi := hi64(r[0]), hi64(r[1])
			a = addr6(lo+rng.Uint64N(hi-lo+1), rng.Uint64())
		}
		want, _ := OperatorOf(a)
		got, ok := OperatorOfASN(full.Lookup(a))
		if !ok || got != want {
			t.Errorf("%s: dataset AS%d is %q's, the embedded table says %q", a, full.Lookup(a), got.ID, want.ID)
		}
	}
	n := 0
	for r, asn := range full.All() {
		want, ok := OperatorOfASN(asn)
		if !ok {
			continue
		}
		n++
		for _, a := range r {
			if got, _ := OperatorOf(a); got != want {
				t.Errorf("%s (AS%d): embedded table says %q, want %q", a, asn, got.ID, want.ID)
			}
		}
	}
	if n < 10000 {
		t.Errorf("only %d dataset ranges of operators", n)
	}
}

// The benchmarks look up random public-looking addresses, three IPv4 to
// one IPv6, too many to stay in the CPU's cache as a few would.
func BenchmarkOperatorOf(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	addrs := make([]netip.Addr, 1<<16)
	for i := range addrs {
		if i%4 == 3 {
			addrs[i] = addr6(0x2000_0000_0000_0000|rng.Uint64()>>4, rng.Uint64())
		} else {
			addrs[i] = addr4(rng.Uint32())
		}
	}
	OperatorOf(addrs[0])
	for i := 0; b.Loop(); i++ {
		OperatorOf(addrs[i&(1<<16-1)])
	}
}

func BenchmarkTableLookup(b *testing.B) {
	full := needData(b)
	rng := rand.New(rand.NewPCG(7, 8))
	addrs := make([]netip.Addr, 1<<16)
	for i := range addrs {
		if i%4 == 3 {
			addrs[i] = addr6(0x2000_0000_0000_0000|rng.Uint64()>>4, rng.Uint64())
		} else {
			addrs[i] = addr4(rng.Uint32())
		}
	}
	for i := 0; b.Loop(); i++ {
		full.Lookup(addrs[i&(1<<16-1)])
	}
}

// TestFrontDoor checks that CDN, large-cloud and large services' addresses
// are front doors and hosting providers' and strangers' are not.
func TestFrontDoor(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{{"cloudflare", true}, {"fastly", true}, {"amazon", true}, {"akamai", true}, {"meta", true}, {"wikimedia", true},
		{"hetzner", false}, {"vultr", false}, {"m247", false}} {
		r := Ranges(tt.id)
		if len(r) == 0 {
			t.Fatalf("%s has no ranges", tt.id)
		}
		if got := FrontDoor(r[0][0]); got != tt.want {
			t.Errorf("FrontDoor(%s, %s) = %v, want %v", r[0][0], tt.id, got, tt.want)
		}
	}
	if FrontDoor(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a documentation address is a front door")
	}
}
