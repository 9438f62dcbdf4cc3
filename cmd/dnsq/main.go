// Command dnsq is a minimal dig for the demo: it sends one query and prints
// the rcode, any Extended DNS Error and the answer addresses on one line.
//
//	dnsq [-tcp] [-server 127.0.0.1:1053] NAME [A|AAAA|...]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

func main() {
	server := flag.String("server", "127.0.0.1:1053", "DNS server host:port")
	tcp := flag.Bool("tcp", false, "query over TCP")
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 {
		fmt.Fprintln(os.Stderr, "usage: dnsq [-tcp] [-server HOST:PORT] NAME [TYPE]")
		os.Exit(2)
	}
	qtype := dns.TypeA
	if flag.NArg() == 2 {
		t, ok := dns.StringToType[strings.ToUpper(flag.Arg(1))]
		if !ok {
			fmt.Fprintf(os.Stderr, "dnsq: unknown type %q\n", flag.Arg(1))
			os.Exit(2)
		}
		qtype = t
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(flag.Arg(0)), qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Timeout: 2 * time.Second}
	if *tcp {
		c.Net = "tcp"
	}
	r, _, err := c.Exchange(m, *server)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsq:", err)
		os.Exit(1)
	}
	fmt.Println(summary(flag.Arg(0), qtype, r))
}

// summary renders r as "NAME TYPE RCODE [ede=N:text] addr,addr".
func summary(name string, qtype uint16, r *dns.Msg) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-26s %-4s %-8s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if ede, ok := opt.(*dns.EDNS0_EDE); ok {
				fmt.Fprintf(&b, " ede=%d(%s)", ede.InfoCode, ede.ExtraText)
			}
		}
	}
	var addrs []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			addrs = append(addrs, rr.A.String())
		case *dns.AAAA:
			addrs = append(addrs, rr.AAAA.String())
		case *dns.CNAME:
			addrs = append(addrs, "CNAME "+rr.Target)
		}
	}
	b.WriteString(" " + strings.Join(addrs, " "))
	return b.String()
}
