// Command gen writes operators.bin, the operator table that package owner
// embeds: the address ranges of large cloud, CDN and hosting operators,
// selected by explicit ASN lists (below) from the ip-location-db ASN
// dataset, adjacent ranges of one operator merged.
//
// It runs from package owner's go:generate line:
//
//	npm pack @ip-location-db/asn@VERSION && tar xzf ip-location-db-asn-VERSION.tgz
//	FLUXGUARD_ASN_DATA=$PWD/package go generate ./internal/owner
//
// -data (default $FLUXGUARD_ASN_DATA) is the unpacked package directory
// (asn-ipv4.csv and asn-ipv6.csv) or one CSV. The output is deterministic.
// -v lists each chosen ASN with the organisation names the dataset gives
// it, for review.
//
// The lists were made by grepping the dataset's organisation names for each
// operator and its brands, then leaving out the look-alikes noted beside
// each list. A name match is not proof of ownership, so an ASN whose owner
// is in doubt is left out: an address the table misses is still counted by
// its ASN, while one it claims wrongly is folded into a large operator.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fluxguard/fluxguard/internal/owner"
)

// operator is one entry of the table. The first ASN is the primary one,
// the number that stands for the whole operator. same names another
// operator whose network this one is (it then has no ASN list).
type operator struct {
	id, name string
	asns     []uint32
	same     string
}

var operators = []operator{
	// Left out: AMAZONIA TELECOMUNICACOES (267242), CONECTA AMAZONIA TELECOM
	// (264509), AMAZONET (264344, 268063, 266194), AMAZONTEL (61577), AMAZON
	// TELECOM LTDA (274698), AMAZONFIBER (271017), AMAZON+ SERVICOS (264167)
	// and the Amazonas state bodies and firms: Brazilian ISPs and
	// institutions, not Amazon.
	{id: "amazon", name: "Amazon", asns: []uint32{
		16509, 14618, 8987, 7224, 801, 38895, 214101, 21664, 62785, 400098,
		401395, 36263, 9059, 135630,
	}},
	// Left out: Google Fiber (16591) and Webpass (19165), Google's ISPs,
	// whose addresses are subscribers'; GOOGLE CHINA INFOTECH OU (151231),
	// not Google.
	{id: "google", name: "Google", asns: []uint32{
		15169, 396982, 43515, 36040, 36384, 394089, 395973, 36492, 41264,
		36411, 19527, 45566, 36383, 16550, 32381, 396178, 394507, 139190,
		394639, 33715, 36987, 36385, 214611, 214609, 139070,
	}},
	// Left out: Microsoft Mobile Alliance Internet Services (59067), a
	// Beijing joint venture.
	{id: "microsoft", name: "Microsoft", asns: []uint32{
		8075, 8069, 8068, 8070, 3598, 35106, 17144, 12076, 46182, 45139,
		30520, 8071, 63314, 5761, 200517, 58862, 54396,
	}},
	{id: "oracle", name: "Oracle", asns: []uint32{
		31898, 54253, 33517, 6142, 46558, 11049, 15519, 1218, 20037, 14544,
		11506, 20054, 15135, 64102, 52019, 1215, 200981, 1219, 393773,
		206209, 200705, 18916, 138207, 11479, 395010, 393314, 38538, 3457,
		34135, 24185, 1217,
	}},
	// Left out: Alibaba Travel Company (34947), not Alibaba Group.
	{id: "alibaba", name: "Alibaba Cloud", asns: []uint32{
		45102, 134963, 37963, 24429,
	}},
	{id: "tencent", name: "Tencent Cloud", asns: []uint32{
		132203, 45090, 133478, 132591, 137876,
	}},
	// IBM Cloud (SoftLayer) first, then IBM's other networks. Left out:
	// FIBMESH (133082, 147196, 149779), SibMediaFon (48507), China
	// International Business Limited (138994), International Business
	// Alliance (202925), China Europe International Business School
	// (327853): not IBM.
	{id: "ibm", name: "IBM", asns: []uint32{
		36351, 62597, 17390, 395403, 204764, 209394, 706, 214585, 202213,
		1747, 24189, 19152, 15776, 15293, 136468, 763, 50524, 27797, 23145,
		203652, 200138, 133377, 10676, 61179, 547, 50995, 43283, 395473,
		393850, 29834, 27530, 27477, 26543, 2538, 23257, 19765, 1786,
	}},
	{id: "digitalocean", name: "DigitalOcean", asns: []uint32{
		14061, 393406, 46652,
	}},
	// Akamai's networks and Linode's (48337, 63949), which Akamai bought.
	{id: "akamai", name: "Akamai", asns: []uint32{
		20940, 16625, 35994, 12222, 24319, 34164, 32787, 36183, 21342, 63949,
		33905, 213120, 200005, 31108, 26008, 393560, 17204, 49846, 48337,
		35204, 18717, 55770, 43639, 393234, 36029, 33047, 31984, 18680,
	}},
	// Left out: OVH Télécom (35540), OVH's ISP.
	{id: "ovh", name: "OVHcloud", asns: []uint32{16276}},
	{id: "hetzner", name: "Hetzner", asns: []uint32{
		24940, 213230, 215859, 212317,
	}},
	{id: "cloudflare", name: "Cloudflare", asns: []uint32{
		13335, 209242, 14789, 395747, 132892, 202623, 203898, 394536, 139242,
		400095,
	}},
	{id: "fastly", name: "Fastly", asns: []uint32{54113}},
	// Apple Inc. and Apple Distribution International. Left out: Apple
	// Communication (139901), Apple Broadband Services (136716), Black Apple
	// (400506), applebee (23459), Apple Network LLC (216183, 215050),
	// Gelicon-Apple (35026, 198675), APPLE NET (138575), Pineapple
	// (54506, 151613, 142567), Apple Bank for Savings (396918, 396959) and
	// other names containing "apple": not Apple.
	{id: "apple", name: "Apple", asns: []uint32{714, 6185, 31128}},
	// Left out: Vultric Hosting (400958), Vultris (202231).
	{id: "vultr", name: "Vultr (The Constant Company)", asns: []uint32{
		20473, 46407, 11508, 54094,
	}},
	{id: "leaseweb", name: "Leaseweb", asns: []uint32{
		60781, 395954, 28753, 30633, 27411, 7203, 396190, 396362, 59253,
		205544, 32613, 394380, 134351, 19148, 133752, 393886, 136988, 38930,
		16265, 60626,
	}},
	{id: "m247", name: "M247", asns: []uint32{9009, 16247, 42973, 33970, 51332}},
	{id: "contabo", name: "Contabo", asns: []uint32{51167, 40021, 141995}},
	// Left out: Association42 Scaleway (205537), the 42 school's network.
	{id: "scaleway", name: "Scaleway", asns: []uint32{12876, 29447, 202023, 54265}},
	{id: "hostinger", name: "Hostinger", asns: []uint32{47583, 204915}},
	{id: "selectel", name: "Selectel", asns: []uint32{49505, 50340, 61976, 198652}},
	{id: "timeweb", name: "Timeweb", asns: []uint32{9123, 210976, 51789, 204427}},
	// Left out: Datacampus SAS (50446).
	{id: "datacamp", name: "DataCamp (CDN77)", asns: []uint32{60068, 212238, 211612}},
	// bunny.net is BunnyWay d.o.o. Left out: Bunny Communications (5065),
	// BUNNY TECHNOLOGY LLC (399073), Bunny & Tomato Interconnect (36268):
	// other companies.
	{id: "bunny", name: "BunnyCDN (bunny.net)", asns: []uint32{200325}},
	{id: "gcore", name: "Gcore", asns: []uint32{199524, 202422, 59245, 210559}},
	// In this dataset Highwinds' old ASNs carry other names (12989 Black
	// HOST, 20446 Dukelana, 33438 Datum) and its old prefixes
	// (151.139.0.0/16, 205.185.192.0/18, 69.16.128.0/17...) Amazon's: only
	// StackPath's own 199156 is left.
	{id: "stackpath", name: "StackPath (Highwinds)", asns: []uint32{199156}},
	{id: "edgio", name: "Edgio (Limelight, Edgecast)", asns: []uint32{
		22822, 55429, 26506, 23059, 38622, 37277, 15133, 14210,
	}},
	{id: "imperva", name: "Imperva (Incapsula)", asns: []uint32{19551, 62571, 14960}},
	// Stark Industries Solutions' AS44477, and WorkTitans B.V. (209847,
	// 213999), the Dutch company under which Stark's network went on as
	// THE.Hosting after the EU sanctioned it in 2025.
	{id: "stark", name: "Stark Industries (THE.Hosting, WorkTitans)", asns: []uint32{
		44477, 209847, 213999,
	}},
	// Left out: Caezar Provedor de Internet (262715), Omaezaki Cable
	// Television (63782).
	{id: "aeza", name: "Aeza", asns: []uint32{210644, 216246}},
	// PQ Hosting is Stark's retail brand (pq.hosting's terms name Stark
	// Industries Solutions Ltd as the provider; AS44477 was registered to PQ
	// Hosting Plus S.R.L.), and the dataset has no ASN of its own for it:
	// it is one network with Stark.
	{id: "pqhosting", name: "PQ Hosting", same: "stark"},
	// Large services on networks of their own, whose names every network
	// asks for: their hosts and points of presence spread over many /16s,
	// one operator. Left out: Yahoo Japan (24572, 23816), LY Corporation's,
	// not Yahoo; Yandex.Cloud (200350, 210656, 215013), a cloud whose
	// tenants are anyone; Valve Networks Pty Ltd (136784), an Australian ISP.
	{id: "meta", name: "Meta (Facebook)", asns: []uint32{32934, 63293, 54115, 149642}},
	{id: "netflix", name: "Netflix", asns: []uint32{2906, 40027, 55095}},
	{id: "yahoo", name: "Yahoo (Oath)", asns: []uint32{
		10310, 36647, 26101, 36646, 7280, 10880, 14778, 393245, 36229, 36088,
		14780, 14779, 14777, 14776, 5779, 36752, 16515, 14196, 7233, 10229,
		34010, 24506, 56173,
	}},
	{id: "yandex", name: "Yandex", asns: []uint32{13238, 44534}},
	{id: "twitter", name: "X (Twitter)", asns: []uint32{13414, 63179, 35995}},
	{id: "bytedance", name: "ByteDance (TikTok)", asns: []uint32{396986}},
	{id: "zoom", name: "Zoom", asns: []uint32{30103}},
	{id: "salesforce", name: "Salesforce", asns: []uint32{14340, 394808, 396417, 22606, 393517}},
	{id: "wikimedia", name: "Wikimedia", asns: []uint32{14907, 11820}},
	{id: "github", name: "GitHub", asns: []uint32{36459}},
	{id: "dropbox", name: "Dropbox", asns: []uint32{19679, 393874, 54372}},
	{id: "linkedin", name: "LinkedIn", asns: []uint32{14413, 13443, 55163, 197613, 40793, 202745}},
	{id: "valve", name: "Valve (Steam)", asns: []uint32{32590}},
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	data := flag.String("data", os.Getenv("FLUXGUARD_ASN_DATA"), "ip-location-db ASN package `directory` or CSV (default $FLUXGUARD_ASN_DATA)")
	out := flag.String("o", "operators.bin", "output `file`")
	verbose := flag.Bool("v", false, "list each chosen ASN with its organisation names")
	flag.Parse()
	if *data == "" {
		log.Fatal("no dataset: npm pack @ip-location-db/asn, unpack it, and set FLUXGUARD_ASN_DATA (or -data) to its package directory")
	}
	if err := check(operators); err != nil {
		log.Fatal(err)
	}
	t, err := owner.Open(*data)
	if err != nil {
		log.Fatal(err)
	}
	if v := version(*data); v != "" {
		fmt.Printf("dataset @ip-location-db/asn %s\n", v)
	}
	opOf := map[uint32]int{}
	for i, o := range operators {
		for _, a := range o.asns {
			opOf[a] = i
		}
	}
	var v4, v6 []rng
	seen := map[uint32]bool{}
	for r, asn := range t.All() {
		i, ok := opOf[asn]
		if !ok {
			continue
		}
		seen[asn] = true
		if r[0].Is4() {
			b, e := r[0].As4(), r[1].As4()
			v4 = add(v4, rng{uint64(binary.BigEndian.Uint32(b[:])), uint64(binary.BigEndian.Uint32(e[:])), i})
		} else {
			b, e := r[0].As16(), r[1].As16()
			v6 = add(v6, rng{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(e[:8]), i})
		}
	}
	for _, o := range operators {
		for _, a := range o.asns {
			if !seen[a] {
				log.Printf("warning: %s: AS%d has no ranges in the dataset", o.id, a)
			}
		}
	}
	bin := encode(operators, v4, v6)
	if err := os.WriteFile(*out, bin, 0o644); err != nil {
		log.Fatal(err)
	}
	summary(os.Stdout, v4, v6)
	fmt.Printf("%s: %d bytes\n", *out, len(bin))
	if *verbose {
		if err := listOrgs(os.Stdout, *data); err != nil {
			log.Fatal(err)
		}
	}
}

// check rejects an ASN listed twice, an empty list, and a bad same.
func check(ops []operator) error {
	ids := map[string]int{}
	asns := map[uint32]string{}
	for i, o := range ops {
		if _, dup := ids[o.id]; dup || o.id == "" {
			return fmt.Errorf("operator id %q empty or repeated", o.id)
		}
		ids[o.id] = i
		if (len(o.asns) == 0) == (o.same == "") {
			return fmt.Errorf("%s: wants either ASNs or same", o.id)
		}
		for _, a := range o.asns {
			if other, dup := asns[a]; dup {
				return fmt.Errorf("AS%d listed for both %s and %s", a, other, o.id)
			}
			asns[a] = o.id
		}
	}
	for _, o := range ops {
		if o.same != "" {
			if j, ok := ids[o.same]; !ok || ops[j].same != "" {
				return fmt.Errorf("%s: same %q is not an operator with ASNs", o.id, o.same)
			}
		}
	}
	if len(ops) > 255 {
		return errors.New("more than 255 operators")
	}
	return nil
}

// rng is a range of one operator: IPv4 addresses or IPv6 /64s.
type rng struct {
	lo, hi uint64
	op     int
}

// add appends r, merging it into the last range when they are of one
// operator and adjacent. The table's ranges come in order and do not
// overlap.
func add(s []rng, r rng) []rng {
	if n := len(s); n > 0 && s[n-1].op == r.op && s[n-1].hi != math.MaxUint64 && s[n-1].hi+1 == r.lo {
		s[n-1].hi = r.hi
		return s
	}
	return append(s, r)
}

// encode writes the table (format version 1, all integers uvarints):
//
//	"FGOP" 1
//	n, then n operators: len(id) id len(name) name primaryASN network
//	m, then m pairs: ASN-delta operator (ASNs ascending)
//	k, then k IPv4 ranges: gap length operator
//	j, then j IPv6 /64 ranges: gap length operator
//
// network is the index of the operator whose ranges stand for this one (its
// own, unless same is set). A range's gap is its start less the previous
// range's end+1 (less 0 for the first), its length is end-start.
func encode(ops []operator, v4, v6 []rng) []byte {
	var b []byte
	u := func(x uint64) { b = binary.AppendUvarint(b, x) }
	str := func(s string) { u(uint64(len(s))); b = append(b, s...) }
	b = append(b, "FGOP\x01"...)
	idx := map[string]int{}
	for i, o := range ops {
		idx[o.id] = i
	}
	u(uint64(len(ops)))
	type pair struct {
		asn uint32
		op  int
	}
	var pairs []pair
	for i, o := range ops {
		str(o.id)
		str(o.name)
		net := i
		if o.same != "" {
			net = idx[o.same]
		}
		u(uint64(ops[net].asns[0]))
		u(uint64(net))
		for _, a := range o.asns {
			pairs = append(pairs, pair{a, i})
		}
	}
	slices.SortFunc(pairs, func(x, y pair) int { return cmp.Compare(x.asn, y.asn) })
	u(uint64(len(pairs)))
	var prev uint32
	for _, p := range pairs {
		u(uint64(p.asn - prev))
		u(uint64(p.op))
		prev = p.asn
	}
	for _, rs := range [][]rng{v4, v6} {
		u(uint64(len(rs)))
		var next uint64
		for _, r := range rs {
			u(r.lo - next)
			u(r.hi - r.lo)
			u(uint64(r.op))
			next = r.hi + 1
		}
	}
	return b
}

func summary(w io.Writer, v4, v6 []rng) {
	fmt.Fprintf(w, "%-13s %6s %6s %6s %9s\n", "operator", "ASNs", "v4", "v6", "v4 /16s")
	for i, o := range operators {
		n4, n6 := 0, 0
		s16 := map[uint64]bool{}
		for _, r := range v4 {
			if r.op == i {
				n4++
				for p := r.lo >> 16; p <= r.hi>>16; p++ {
					s16[p] = true
				}
			}
		}
		for _, r := range v6 {
			if r.op == i {
				n6++
			}
		}
		if o.same != "" {
			fmt.Fprintf(w, "%-13s  (the network of %s)\n", o.id, o.same)
			continue
		}
		fmt.Fprintf(w, "%-13s %6d %6d %6d %9d\n", o.id, len(o.asns), n4, n6, len(s16))
	}
	fmt.Fprintf(w, "%-13s %6s %6d %6d\n", "total", "", len(v4), len(v6))
}

// version returns the npm package's version from DIR/package.json, "" when
// there is none.
func version(data string) string {
	b, err := os.ReadFile(filepath.Join(data, "package.json"))
	if err != nil {
		return ""
	}
	var p struct{ Version string }
	if json.Unmarshal(b, &p) != nil {
		return ""
	}
	return p.Version
}

// listOrgs prints every chosen ASN with the organisation names the dataset
// gives it, so that a reviewer sees what each list selects.
func listOrgs(w io.Writer, data string) error {
	files := []string{data}
	if fi, err := os.Stat(data); err == nil && fi.IsDir() {
		files = []string{filepath.Join(data, "asn-ipv4.csv"), filepath.Join(data, "asn-ipv6.csv")}
	}
	orgs := map[uint32]map[string]int{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		r := csv.NewReader(bufio.NewReader(f))
		r.FieldsPerRecord = -1
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return err
			}
			if len(rec) < 4 {
				continue
			}
			a, err := strconv.ParseUint(rec[2], 10, 32)
			if err != nil {
				continue
			}
			if orgs[uint32(a)] == nil {
				orgs[uint32(a)] = map[string]int{}
			}
			orgs[uint32(a)][rec[3]]++
		}
		f.Close()
	}
	var buf bytes.Buffer
	for _, o := range operators {
		for _, a := range o.asns {
			var names []string
			for n, c := range orgs[a] {
				names = append(names, fmt.Sprintf("%s (%d)", n, c))
			}
			slices.Sort(names)
			fmt.Fprintf(&buf, "%-13s AS%-7d %s\n", o.id, a, strings.Join(names, "; "))
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}
