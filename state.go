package fluxguard

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"

	"github.com/fluxguard/fluxguard/internal/engine"
	"github.com/fluxguard/fluxguard/internal/owner"
)

// kept holds what each server block keeps across Corefile reloads, keyed
// by stateKey: its engine, so that a reload keeps the evidence and the
// flagged set, and its rpz zone, whose serials and journal the secondaries
// hold (a new zone could start at a serial they hold with other content).
var (
	keptMu sync.Mutex
	kept   = map[string]blockState{}
)

// blockState is what a server block keeps across reloads.
type blockState struct {
	eng  *engine.Engine
	rpz  *rpzZone // nil without the rpz option
	view string   // the view of the block it is, known once started ("" for none)
}

// stateKey names the server block of c, for keeping its state across
// reloads: its keys, and its place among the Corefile's blocks of the same
// keys, which the view plugin tells apart, so that no two blocks of a
// Corefile share a name.
func stateKey(c *caddy.Controller) string {
	bn := blockNamesOf(c)
	if key, ok := bn.byIndex[c.ServerBlockIndex]; ok {
		return key
	}
	keys := strings.Join(c.ServerBlockKeys, " ")
	key := fmt.Sprintf("%s#%d", keys, bn.sameKeys[keys])
	bn.sameKeys[keys]++
	bn.byIndex[c.ServerBlockIndex] = key
	return key
}

// keysOf returns the server block keys of stateKey key.
func keysOf(key string) string { return key[:strings.LastIndexByte(key, '#')] }

// blockNames holds, in the caddy instance's storage under blockNamesKey,
// the stateKey of each server block by its index in the Corefile, how
// many blocks have each set of keys, and the states kept before the
// instance's first block was set up (see ownState).
type blockNames struct {
	byIndex  map[int]string
	sameKeys map[string]int
	before   map[string]blockState
}

type blockNamesKey struct{}

// blockNamesOf returns the blockNames of c's caddy instance, made by its
// first server block.
func blockNamesOf(c *caddy.Controller) *blockNames {
	if bn, ok := c.Get(blockNamesKey{}).(*blockNames); ok {
		return bn
	}
	keptMu.Lock()
	bn := &blockNames{byIndex: map[int]string{}, sameKeys: map[string]int{}, before: maps.Clone(kept)}
	keptMu.Unlock()
	c.Set(blockNamesKey{}, bn)
	return bn
}

// engineFor returns the engine for key: after a reload, the running one
// reconfigured with cfg (reloaded), which takes the shared state over only
// when adopted (see start); else a new one, loaded from cfg's state file
// if any, with the time that state was saved (zero for none).
func engineFor(key string, cfg config) (eng *engine.Engine, saved time.Time, reloaded bool, err error) {
	keptMu.Lock()
	defer keptMu.Unlock()
	if old, ok := kept[key]; ok {
		if eng, err = old.eng.Reconfigured(cfg.engineConfig()); err != nil {
			return nil, saved, false, err
		}
		kept[key] = blockState{eng: eng, rpz: old.rpz, view: old.view}
		return eng, saved, true, nil
	}
	if eng, saved, err = newEngine(cfg); err != nil {
		return nil, saved, false, err
	}
	if key != "" {
		kept[key] = blockState{eng: eng}
	}
	return eng, saved, false, nil
}

// newEngine returns a new engine for cfg, loaded from its state file if
// any, with the time that state was saved (zero for none).
func newEngine(cfg config) (eng *engine.Engine, saved time.Time, err error) {
	if eng, err = engine.New(cfg.engineConfig()); err != nil {
		return nil, saved, err
	}
	if cfg.stateFile != "" {
		saved = loadState(eng, cfg.stateFile)
	}
	return eng, saved, nil
}

// engineConfig is cfg's engine configuration, with the network owners.
func (cfg config) engineConfig() engine.Config {
	ec := cfg.engine
	ec.ASN, ec.FrontDoor = cfg.owners(ec.ASN), owner.FrontDoor
	return ec
}

// keepView records f's view with the state kept under its key, and
// returns the view of the block that kept it before.
func keepView(f *Fluxguard) (previous string) {
	keptMu.Lock()
	defer keptMu.Unlock()
	bs, ok := kept[f.key]
	if !ok {
		return f.view
	}
	previous, bs.view = bs.view, f.view
	kept[f.key] = bs
	return previous
}

// ownState gives f its view's state, when the one kept under its key
// after a reload was another view's (other's): blocks told apart by view
// are named by their place among the blocks of the same keys (see
// stateKey), which a reload that adds, removes or moves one changes. It
// takes the state its view kept under another name (see viewState), if
// any, else starts afresh (from its state file, if any).
func (f *Fluxguard) ownState(other string) error {
	if found, err := f.viewState(); found || err != nil {
		return err
	}
	eng, saved, err := newEngine(f.cfg)
	if err != nil {
		return err
	}
	log.Warningf("the state kept for %s was view %q's, not %q's: the view blocks changed places; starting afresh", f.key, other, f.view)
	eng.SetPolicy(f.cfg.policy())
	f.eng, f.stateSaved, f.adopt = eng, saved, false
	if f.rpz != nil {
		f.rpz = newRPZZone(*f.cfg.rpz, f.cfg.sinkholeTTL, time.Now())
	}
	keepState(f)
	return nil
}

// viewState takes, for f, the state its view kept before the reload under
// another name among the blocks of the same keys (see blockNames.before),
// to be adopted, and reports whether there was one: a view block that a
// reload moved, to a place another block had or none had.
func (f *Fluxguard) viewState() (bool, error) {
	for key, bs := range f.before {
		if keysOf(key) != keysOf(f.key) || bs.view != f.view || bs.eng == nil {
			continue
		}
		eng, err := bs.eng.Reconfigured(f.cfg.engineConfig())
		if err != nil {
			return false, err
		}
		f.eng, f.adopt = eng, true
		if f.rpz != nil {
			f.rpz = rpzZoneOf(bs, *f.cfg.rpz, f.cfg.sinkholeTTL, time.Now())
		}
		keepState(f)
		return true, nil
	}
	return false, nil
}

// rpzZoneFor returns the rpz zone for key's block: the one kept across
// reloads when it has the same origin (its serials go on, and the
// journal stays valid), else a new one.
func rpzZoneFor(key string, c rpzConfig, ttl uint32, now time.Time) *rpzZone {
	keptMu.Lock()
	defer keptMu.Unlock()
	bs := kept[key]
	bs.rpz = rpzZoneOf(bs, c, ttl, now)
	if key != "" && bs.eng != nil {
		kept[key] = bs
	}
	return bs.rpz
}

// rpzZoneOf returns bs's rpz zone when it has c's origin, else a new one.
func rpzZoneOf(bs blockState, c rpzConfig, ttl uint32, now time.Time) *rpzZone {
	if bs.rpz == nil || bs.rpz.origin != c.zone {
		return newRPZZone(c, ttl, now)
	}
	return bs.rpz
}

// keepState makes f's engine and zone key's again, after a reload that
// replaced them failed: the next reload starts from those that serve.
func keepState(f *Fluxguard) {
	if f.key == "" {
		return
	}
	keptMu.Lock()
	defer keptMu.Unlock()
	kept[f.key] = blockState{eng: f.eng, rpz: f.rpz, view: f.view}
}

// forgetState drops key's engine and zone at the final shutdown.
func forgetState(key string) {
	keptMu.Lock()
	defer keptMu.Unlock()
	delete(kept, key)
}

// loadState restores eng from path, first removing the temporary files
// that saves cut short by a crash left beside it, and returns when the
// state was saved (the file is renamed into place whole), zero when none
// was restored. A missing file is a first start; a corrupt, truncated or
// other-version file is reported and ignored: the resolver always starts.
func loadState(eng *engine.Engine, path string) time.Time {
	removeStaleTemps(path)
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return time.Time{}
	}
	if err != nil {
		log.Warningf("state file %s not loaded: %v", path, err)
		return time.Time{}
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		log.Warningf("state file %s not loaded: %v", path, err)
		return time.Time{}
	}
	n, err := eng.Load(f)
	if err != nil {
		log.Warningf("state file %s ignored: %v", path, err)
		return time.Time{}
	}
	log.Infof("restored %d names from %s", n, path)
	return info.ModTime()
}

// tempPattern names saveState's temporary files, beside the state file.
func tempPattern(path string) string { return filepath.Base(path) + ".tmp*" }

// removeStaleTemps removes the temporary files of saves that never
// finished. It runs only as a new engine is made, when no save is under way.
func removeStaleTemps(path string) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	for _, name := range stale {
		if err := os.Remove(name); err == nil {
			log.Infof("removed %s, left by a save cut short", name)
		}
	}
}

// saveState writes eng's state to path atomically: to a temporary file in
// the same directory, synced, renamed over path, and the directory synced,
// so that path holds the last complete snapshot or the one before, even
// after a crash or a power loss. A failed save leaves path as it was.
func saveState(eng *engine.Engine, path string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	w := bufio.NewWriterSize(tmp, 64<<10)
	err = eng.Save(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	return err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// stateSaver saves an engine's state every state_interval. A failing
// save is logged once, with its error, until a save succeeds again, and
// counted every time.
type stateSaver struct {
	path    string
	failing string // the cause of the failing saves, "" when the last succeeded
}

// cause is the innermost error of err, without the temporary file's name
// that changes with every save: "no space left on device", say.
func cause(err error) string {
	for errors.Unwrap(err) != nil {
		err = errors.Unwrap(err)
	}
	return err.Error()
}

func (s *stateSaver) save(eng *engine.Engine, server string) {
	err := saveState(eng, s.path)
	if err != nil {
		stateSaveFailures.WithLabelValues(server).Inc()
		if cause(err) != s.failing {
			log.Errorf("saving state to %s failed, the previous file is kept: %v", s.path, err)
			s.failing = cause(err)
		}
		return
	}
	stateSaved.WithLabelValues(server).SetToCurrentTime()
	if s.failing != "" {
		log.Infof("saving state to %s works again", s.path)
		s.failing = ""
	}
}
