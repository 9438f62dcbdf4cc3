// Package testenv gives tests what they need from outside Go: the
// ip-location-db ASN tables and Debian's tools. scripts/test.sh provides
// them and sets FLUXGUARD_REQUIRE_DATA; without it, a test that lacks one
// is skipped, with it, it fails.
package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ASNData returns the path of the ip-location-db ASN tables
// (FLUXGUARD_ASN_DATA).
func ASNData(t testing.TB) string {
	t.Helper()
	path := os.Getenv("FLUXGUARD_ASN_DATA")
	if path == "" {
		missing(t, "FLUXGUARD_ASN_DATA is not set (the ASN tables)")
	}
	return path
}

// Tool returns the path of the command name.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" is not installed")
	}
	return path
}

func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("FLUXGUARD_REQUIRE_DATA") != "" {
		t.Fatal(what + ": run scripts/test.sh, which provides it")
	}
	t.Skip(what + ": scripts/test.sh provides it and runs this test")
}

// Redis is a redis-server of the test's own on loopback, which the test
// can stop and start again on the same port.
type Redis struct {
	Addr string
	// CA is the PEM file of the certificate authority of a server
	// started by StartRedisTLS.
	CA   string
	conf string // a Sentinel's configuration file, for StartRedisSentinel
	t    testing.TB
	dir  string
	args []string
	tls  *tls.Config // of the readiness probe, for a TLS server
	cmd  *exec.Cmd
}

// StartRedis starts Debian's redis-server on a free loopback port, with
// no persistence, and stops it when the test ends. extra are more
// configuration directives, as command-line arguments.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	Tool(t, "redis-server")
	addr := FreeAddr(t)
	r := &Redis{Addr: addr, t: t, dir: t.TempDir(), args: extra}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// StartRedisSentinel starts a Sentinel of its own on a free loopback
// port, monitoring master under the name mymaster (quorum 1).
func StartRedisSentinel(t testing.TB, master *Redis) *Redis {
	t.Helper()
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(master.Addr)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte("sentinel monitor mymaster "+host+" "+port+" 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Redis{Addr: FreeAddr(t), conf: conf, t: t, dir: dir}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// StartRedisCluster starts a Redis Cluster of three masters on free
// loopback ports, its slots spread by redis-cli, and returns its nodes.
func StartRedisCluster(t testing.TB) []*Redis {
	t.Helper()
	var nodes []*Redis
	create := []string{"--cluster", "create"}
	for range 3 {
		n := StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
		nodes = append(nodes, n)
		create = append(create, n.Addr)
	}
	if out, err := exec.Command(Tool(t, "redis-cli"), append(create, "--cluster-yes")...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", create, err, out)
	}
	host, port, _ := net.SplitHostPort(nodes[0].Addr)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
		if strings.Contains(string(out), "cluster_state:ok") {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster is not ready: %s", out)
		}
	}
}

// FreeAddr returns a loopback address whose port is free for TCP and UDP,
// and that no earlier call in this test process returned. CoreDNS binds
// with SO_REUSEPORT, so two of its listeners given one port (the DNS
// server's and the prometheus plugin's, say) share it silently rather
// than fail, and connections go to either; the kernel may pick a port
// again as soon as its probe is closed, before the server binds it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		givenMu.Lock()
		seen := given[addr]
		given[addr] = true
		givenMu.Unlock()
		if !seen {
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

var (
	givenMu sync.Mutex
	given   = map[string]bool{} // the addresses FreeAddr returned
)

// StartRedisTLS is StartRedis with TLS only, under a certificate for
// 127.0.0.1 from a certificate authority of the test's own (Redis.CA).
func StartRedisTLS(t testing.TB) *Redis {
	t.Helper()
	dir := t.TempDir()
	ca, pool := writeCertificates(t, dir)
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	r := &Redis{Addr: addr, CA: ca, t: t, dir: dir, tls: &tls.Config{RootCAs: pool},
		args: []string{"--port", "0", "--tls-port", port, "--tls-auth-clients", "no",
			"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server-key.pem")}}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// writeCertificates writes a certificate authority (ca.pem) and a
// server certificate for 127.0.0.1 it signed (server.pem, server-key.pem)
// to dir, and returns the authority's file and pool.
func writeCertificates(t testing.TB, dir string) (string, *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fluxguard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, block := range map[string]*pem.Block{
		"ca.pem":         {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem":     {Type: "CERTIFICATE", Bytes: der},
		"server-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return filepath.Join(dir, "ca.pem"), pool
}

// Start starts the server again after Stop.
func (r *Redis) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	var args []string
	if r.conf != "" {
		args = []string{r.conf, "--sentinel"}
	}
	args = append(args, []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--protected-mode", "no"}...)
	args = append(args, r.args...) // later options win
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := r.dial(); err == nil {
			// Any reply will do: +PONG, or -NOAUTH with requirepass.
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 1)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if n == 1 && (buf[0] == '+' || buf[0] == '-') {
				return
			}
		}
	}
	r.t.Fatalf("redis-server on %s did not answer", r.Addr)
}

func (r *Redis) dial() (net.Conn, error) {
	if r.tls != nil {
		return tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", r.Addr, r.tls)
	}
	return net.DialTimeout("tcp", r.Addr, time.Second)
}

// Stop stops the server.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}
