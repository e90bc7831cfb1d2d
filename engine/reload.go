package engine

import (
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"luaserve/luabind"
)

// Hot reload watches every file a generation was built from — the config
// and its includes, every *_by_lua_file script, every module require found
// on lua_package_path — by polling their stat: portable, no dependency, and
// editors that save by renaming a new file over the old one are seen as a
// changed inode. A change triggers Reload once the files have been still for
// ReloadSettle.
const (
	// ReloadPoll is how often the watcher looks at the files.
	ReloadPoll = 200 * time.Millisecond
	// ReloadSettle is how long files must stay unchanged before a reload,
	// so a burst of writes (save, then format-on-save) makes one reload.
	ReloadSettle = 100 * time.Millisecond
)

// fileStamp is what the watcher compares: a file that changed in any of
// these was written or replaced. missing marks a file that did not exist.
type fileStamp struct {
	mtime   int64
	size    int64
	ino     uint64
	missing bool
}

func statFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{missing: true}
	}
	st := fileStamp{mtime: fi.ModTime().UnixNano(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// watcher polls the current generation's files and reloads on change.
type watcher struct {
	e    *Engine
	stop chan struct{}
	done chan struct{}
	// seen is the state of the files at the last reload attempt, whether it
	// succeeded or not: a failed reload is retried only when a file changes
	// again (the fix), not on every poll.
	seen map[string]fileStamp
}

func (e *Engine) startWatcher() {
	w := &watcher{e: e, stop: make(chan struct{}), done: make(chan struct{})}
	w.seen = e.gen.Load().sourceStamps()
	e.watch = w
	go w.run()
}

func (w *watcher) close() {
	close(w.stop)
	<-w.done
}

func (w *watcher) run() {
	defer close(w.done)
	t := time.NewTicker(ReloadPoll)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		g := w.e.gen.Load()
		if g == nil {
			return
		}
		if !g.cfg.HTTP.HotReload {
			continue
		}
		changed := w.changed(g)
		if len(changed) == 0 {
			continue
		}
		// Let a burst of writes finish before reading anything: wait until
		// the changed files look the same twice in a row.
		snap := snapshot(changed)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(ReloadSettle):
			}
			changed = w.changed(g)
			now := snapshot(changed)
			if sameStamps(snap, now) {
				break
			}
			snap = now
		}
		for _, f := range changed {
			w.seen[f] = statFile(f)
		}
		w.e.reload("changed: " + strings.Join(relPaths(g.cfg.Prefix, changed), ", "))
		// Files of the new generation (new includes, modules) join seen
		// with their current state.
		if ng := w.e.gen.Load(); ng != nil && ng != g {
			for f, st := range ng.sourceStamps() {
				if _, ok := w.seen[f]; !ok {
					w.seen[f] = st
				}
			}
		}
	}
}

// changed lists g's files whose stamp differs from the last one seen.
func (w *watcher) changed(g *generation) []string {
	var out []string
	for f, st := range g.sourceStamps() {
		seen, ok := w.seen[f]
		if !ok {
			seen = st
			w.seen[f] = st
		}
		if statFile(f) != seen {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func snapshot(files []string) map[string]fileStamp {
	m := make(map[string]fileStamp, len(files))
	for _, f := range files {
		m[f] = statFile(f)
	}
	return m
}

func sameStamps(a, b map[string]fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for f, st := range a {
		if b[f] != st {
			return false
		}
	}
	return true
}

func relPaths(prefix string, files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = strings.TrimPrefix(strings.TrimPrefix(f, prefix), "/")
	}
	return out
}

// logReload writes the one [notice] line a reload makes.
func (e *Engine) logReload(g *generation, why string, took time.Duration) {
	e.errlog.Logf(luabind.LogNotice, "reloaded configuration (%s): generation %d in %s", why, g.id, took.Round(time.Microsecond))
}
