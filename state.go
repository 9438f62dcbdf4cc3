package fluxguard

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/coredns/caddy"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/owner"
)

// engines holds each server block's engine across Corefile reloads, keyed
// by stateKey, so that a reload keeps the evidence and the flagged set.
var (
	enginesMu sync.Mutex
	engines   = map[string]*engine.Engine{}
)

// stateKey names the server block (and key within it) of c.
func stateKey(c *caddy.Controller) string {
	return fmt.Sprintf("%s#%d", strings.Join(c.ServerBlockKeys, " "), c.ServerBlockKeyIndex)
}

// engineFor returns the engine for key: the running one reconfigured with
// cfg after a reload, else a new one, loaded from cfg's state file if any.
func engineFor(key string, cfg config) (*engine.Engine, error) {
	ec := cfg.engine
	ec.ASN, ec.FrontDoor = cfg.owners(ec.ASN), owner.FrontDoor
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if old, ok := engines[key]; ok {
		eng, err := old.Reconfigured(ec)
		if err != nil {
			return nil, err
		}
		engines[key] = eng
		return eng, nil
	}
	eng, err := engine.New(ec)
	if err != nil {
		return nil, err
	}
	if cfg.stateFile != "" {
		loadState(eng, cfg.stateFile)
	}
	if key != "" {
		engines[key] = eng
	}
	return eng, nil
}

// forgetEngine drops key's engine at the final shutdown.
func forgetEngine(key string) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	delete(engines, key)
}

// loadState restores eng from path. A missing file is a first start; a
// corrupt, truncated or other-version file is reported and ignored: the
// resolver always starts.
func loadState(eng *engine.Engine, path string) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		log.Warningf("state file %s not loaded: %v", path, err)
		return
	}
	defer f.Close()
	n, err := eng.Load(bufio.NewReader(f))
	if err != nil {
		log.Warningf("state file %s ignored: %v", path, err)
		return
	}
	log.Infof("restored %d names from %s", n, path)
}

// saveState writes eng's state to path atomically: to a temporary file in
// the same directory, synced, then renamed over path.
func saveState(eng *engine.Engine, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	w := bufio.NewWriter(tmp)
	if err := eng.Save(w); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
