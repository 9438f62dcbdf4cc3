package fluxguard

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fluxguard/fluxguard/internal/fleet"
)

// sharedConfig is the shared option: the Redis (or Valkey) that the
// replicas of a fleet share evidence and holds through.
type sharedConfig struct {
	urls         []string
	prefix       string
	passwordFile string
	passwordEnv  string
	sentinel     string // master name; the URLs are then the sentinels'
	cluster      bool
	tlsCA        string
	flush        time.Duration
}

// Defaults of the shared option.
const (
	defaultSharedPrefix = "fluxguard"
	defaultSharedFlush  = time.Second
	// sharedSyncTimeout bounds the wait for the fleet's holds at start.
	sharedSyncTimeout = 2 * time.Second
)

// shared reads `shared URL... [prefix P] [password_file PATH]
// [password_env VAR] [sentinel MASTER] [cluster] [tls_ca PATH]
// [flush DURATION]`.
func (a optionArgs) shared() (*sharedConfig, error) {
	c := &sharedConfig{prefix: defaultSharedPrefix, flush: defaultSharedFlush}
	rest := a.args
	for len(rest) > 0 && strings.Contains(rest[0], "://") {
		u, err := url.Parse(rest[0])
		switch {
		case err != nil || u.Scheme != "redis" && u.Scheme != "rediss" || u.Host == "":
			return nil, a.c.Errf("%s: %q is not a redis:// or rediss:// URL", a.opt, rest[0])
		case u.User != nil && func() bool { _, set := u.User.Password(); return set }():
			return nil, a.c.Errf("%s: %q carries a password: use password_file or password_env", a.opt, u.Redacted())
		}
		c.urls = append(c.urls, rest[0])
		rest = rest[1:]
	}
	if len(c.urls) == 0 {
		return nil, a.c.Errf("%s: expect a redis:// or rediss:// URL first", a.opt)
	}
	for len(rest) > 0 {
		key := rest[0]
		if key == "cluster" {
			c.cluster, rest = true, rest[1:]
			continue
		}
		if len(rest) < 2 {
			return nil, a.c.Errf("%s: %q takes a value", a.opt, key)
		}
		val := rest[1]
		rest = rest[2:]
		switch key {
		case "prefix":
			c.prefix = val
		case "password_file":
			c.passwordFile = val
		case "password_env":
			c.passwordEnv = val
		case "sentinel":
			c.sentinel = val
		case "tls_ca":
			c.tlsCA = val
		case "flush":
			d, err := time.ParseDuration(val)
			if err != nil || d < 100*time.Millisecond || d > time.Minute {
				return nil, a.c.Errf("%s: flush: %q is not a duration within 100ms..1m", a.opt, val)
			}
			c.flush = d
		default:
			return nil, a.c.Errf("%s: unknown argument %q; expect 'prefix', 'password_file', 'password_env', "+
				"'sentinel', 'cluster', 'tls_ca' or 'flush'", a.opt, key)
		}
	}
	if c.sentinel != "" && c.cluster {
		return nil, a.c.Errf("%s: 'sentinel' and 'cluster' exclude each other", a.opt)
	}
	if _, err := c.options(); err != nil {
		return nil, a.c.Errf("%s: %v", a.opt, err)
	}
	return c, nil
}

// options returns go-redis's options for c, reading the password and
// the CA: the first URL gives the database, user and TLS, the others
// more addresses (Sentinel's or Cluster's seeds).
func (c *sharedConfig) options() (redis.UniversalOptions, error) {
	var o redis.UniversalOptions
	for i, raw := range c.urls {
		ro, err := redis.ParseURL(raw)
		if err != nil {
			return o, err
		}
		o.Addrs = append(o.Addrs, ro.Addr)
		if i == 0 {
			o.DB, o.Username, o.TLSConfig = ro.DB, ro.Username, ro.TLSConfig
		}
	}
	o.MasterName, o.IsClusterMode = c.sentinel, c.cluster
	if c.sentinel == "" && !c.cluster && len(o.Addrs) > 1 {
		return o, fmt.Errorf("several URLs need 'sentinel MASTER' or 'cluster'")
	}
	switch {
	case c.passwordFile != "" && c.passwordEnv != "":
		return o, fmt.Errorf("'password_file' and 'password_env' exclude each other")
	case c.passwordFile != "":
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return o, fmt.Errorf("password_file: %v", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	case c.passwordEnv != "":
		v, ok := os.LookupEnv(c.passwordEnv)
		if !ok {
			return o, fmt.Errorf("password_env: %s is not set", c.passwordEnv)
		}
		o.Password = v
	}
	if c.sentinel != "" {
		o.SentinelUsername, o.SentinelPassword = o.Username, o.Password
	}
	if c.tlsCA != "" {
		if o.TLSConfig == nil {
			return o, fmt.Errorf("tls_ca needs rediss:// URLs")
		}
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return o, fmt.Errorf("tls_ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("tls_ca: no certificate in %s", c.tlsCA)
		}
		o.TLSConfig = &tls.Config{RootCAs: pool, ServerName: o.TLSConfig.ServerName, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// String describes c without its secrets, for logs.
func (c *sharedConfig) String() string {
	return fmt.Sprintf("%v prefix=%s password_file=%s password_env=%s sentinel=%s cluster=%v tls_ca=%s flush=%s",
		c.urls, c.prefix, c.passwordFile, c.passwordEnv, c.sentinel, c.cluster, c.tlsCA, c.flush)
}

// stream names the fleet's stream: its Redis and its prefix.
func (c *sharedConfig) stream() string { return fmt.Sprintf("%v prefix=%s", c.urls, c.prefix) }

// identity tells whether a reload changed c: its options, and a digest of
// the password and the CA it reads, which a rotation may change in place
// (a Kubernetes Secret, say) with the Corefile as it was.
func (c *sharedConfig) identity() string {
	h := sha256.New()
	for _, path := range []string{c.passwordFile, c.tlsCA} {
		if path != "" {
			b, _ := os.ReadFile(path) // options reports what fails to read
			h.Write(b)
		}
		h.Write([]byte{0})
	}
	if c.passwordEnv != "" {
		h.Write([]byte(os.Getenv(c.passwordEnv)))
	}
	return fmt.Sprintf("%s secrets=%x", c, h.Sum(nil)[:8])
}

// fleetLink is a link to a fleet shared by the instances of one server
// block across reloads, as long as its configuration does not change: a
// reload, which starts the new instance before it stops the old, keeps
// the connection and the place in the stream.
type fleetLink struct {
	key, conf string
	stream    string // the Redis and the prefix it reads (see stream)
	refs      int
	link      *fleet.Link
	owner     *Fluxguard // the latest instance, for its server label
}

var (
	fleetsMu sync.Mutex
	fleets   = map[string]*fleetLink{}
)

// acquireFleet links f's engine to its fleet: a new link merges the
// fleet's holds, waiting sharedSyncTimeout at most, before it returns.
func acquireFleet(f *Fluxguard) (*fleetLink, error) {
	c := f.cfg.shared
	conf, stream := c.identity(), c.stream()
	since := f.stateSaved
	fleetsMu.Lock()
	if fl, ok := fleets[f.key]; ok {
		if fl.conf == conf {
			fl.refs++
			fl.owner = f
			fl.link.SetEngine(f.eng)
			fleetsMu.Unlock()
			return fl, nil
		}
		if fl.stream == stream {
			since = time.Now() // the link replaced merges until it closes
		}
	}
	fleetsMu.Unlock()
	opts, err := c.options()
	if err != nil {
		return nil, fmt.Errorf("shared: %v", err)
	}
	link := fleet.New(fleet.Options{Client: opts, Prefix: c.prefix, Flush: c.flush, Since: since, Logf: log.Warningf}, f.eng)
	if err := link.SyncHolds(sharedSyncTimeout); err == nil {
		log.Infof("shared: joined the fleet at %v, prefix %s", opts.Addrs, c.prefix)
	}
	link.Start()
	fl := &fleetLink{key: f.key, conf: conf, stream: stream, refs: 1, link: link, owner: f}
	fleetsMu.Lock()
	defer fleetsMu.Unlock()
	if old, ok := fleets[f.key]; ok {
		old.key = "" // replaced: its last release closes it without unlisting this one
	}
	fleets[f.key] = fl
	return fl, nil
}

// reinstateFleet points fl back at f, whose reload failed: fl is f's
// link again, and its server block's for the next reload.
func reinstateFleet(fl *fleetLink, f *Fluxguard) {
	fleetsMu.Lock()
	defer fleetsMu.Unlock()
	fl.key, fl.owner = f.key, f
	fleets[f.key] = fl
	fl.link.SetEngine(f.eng)
}

// releaseFleet closes the link when its last instance is gone.
func releaseFleet(fl *fleetLink) {
	fleetsMu.Lock()
	last := fl.refs == 1
	fl.refs--
	if last && fleets[fl.key] == fl {
		delete(fleets, fl.key)
	}
	fleetsMu.Unlock()
	if last {
		fl.link.Close() // outside the lock: it waits for a read of up to a second
	}
}
