package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/plugchain/plug/chain/boltcheck"
)

// ErrNodeRunning: a node holds the lock of a database file of the home.
var ErrNodeRunning = errors.New("the node is running")

// MoveAside moves the databases of the node home dir (state.db, chain.db) into a
// new directory dir/corrupt-<UTC time>/ and returns it with the files moved. The
// node key, config and genesis stay, so the next start begins at genesis and
// fetches every block from its peers (block sync asks for heights from 1). It
// refuses while a process holds a database's lock (a running node), and when
// there is nothing to move.
func MoveAside(dir string, now time.Time) (to string, moved []string, err error) {
	var present []string
	for _, name := range []string{StateDB, ChainDB} {
		p := filepath.Join(dir, name)
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		// bbolt takes an exclusive flock on the file for as long as a node has it
		// open; hold it while moving so no node opens the file meanwhile.
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return "", nil, &boltcheck.Error{Path: p, Err: boltcheck.ErrLocked,
					Detail: fmt.Sprintf("%v: stop the node before moving its databases", ErrNodeRunning)}
			}
			return "", nil, fmt.Errorf("lock %s: %w", p, err)
		}
		defer f.Close() // releases the lock, after the move
		present = append(present, name)
	}
	if len(present) == 0 {
		return "", nil, fmt.Errorf("%s holds no %s or %s: nothing to move", dir, StateDB, ChainDB)
	}
	to = filepath.Join(dir, "corrupt-"+now.UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(to, 0o700); err != nil {
		return "", nil, fmt.Errorf("make %s: %w", to, err)
	}
	for _, name := range present {
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(to, name)); err != nil {
			return to, moved, fmt.Errorf("move %s to %s: %w", name, to, err)
		}
		moved = append(moved, name)
	}
	return to, moved, nil
}
