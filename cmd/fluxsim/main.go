// Command fluxsim serves the fluxsim demo names (simulated fast-flux and benign
// domains) over UDP and TCP until interrupted. It is a simulator: by default it
// only listens on loopback addresses.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fluxguard/fluxguard/internal/fluxsim"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1054", "host:port to serve on (udp+tcp)")
	quiet := flag.Bool("quiet", false, "do not print the startup line")
	anyAddr := flag.Bool("any-addr", false, "allow listening on non-loopback addresses")
	flag.Parse()
	log.SetFlags(0)

	if err := checkLoopback(*listen); err != nil && !*anyAddr {
		log.Fatalf("fluxsim: %v (use -any-addr to override)", err)
	}
	names := fluxsim.Demo()
	s, err := fluxsim.New(names)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(*listen); err != nil {
		log.Fatal(err)
	}
	if !*quiet {
		fmt.Printf("fluxsim: serving %d names on %s (udp+tcp)\n", len(names), s.Addr())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
}

// checkLoopback returns an error unless addr's host is a loopback IP or "localhost".
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on non-loopback address %q", addr)
}
