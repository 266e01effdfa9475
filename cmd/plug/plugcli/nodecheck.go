package plugcli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/term"

	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/store"
)

// maxFindings bounds the findings listed per check.
const maxFindings = 20

// fileCheck is one database file in `plug node check`.
type fileCheck struct {
	File     string   `json:"file"`
	Path     string   `json:"path"`
	Present  bool     `json:"present"`
	Size     int64    `json:"size,omitempty"`
	PageSize uint32   `json:"page_size,omitempty"`
	Pages    uint64   `json:"pages,omitempty"` // the meta page's high-water mark
	Keys     int64    `json:"keys,omitempty"`  // keys read by the walk
	Notes    []string `json:"notes,omitempty"`
	Problems []string `json:"problems"`
}

// checkOut is `plug node check` in --output json.
type checkOut struct {
	Home            string      `json:"home"`
	OK              bool        `json:"ok"`
	Files           []fileCheck `json:"files"`
	Height          *uint64     `json:"height"`        // the block store's (null: unreadable)
	StateVersion    *uint64     `json:"state_version"` // genesis is 1, block h is h+1 (null: unreadable)
	StateRoot       string      `json:"state_root,omitempty"`
	HeaderStateRoot string      `json:"header_state_root,omitempty"`
	Notes           []string    `json:"notes,omitempty"`
	Problems        []string    `json:"problems"` // between the files
}

func nodeCheckCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check a stopped node's databases: bbolt's page checks, blocks, state root",
		UsageText: "plug node check [--home] DIR [--output json]\n\n" +
			"plug node check /srv/plug/val-1\n" +
			"plug node check --home ./val-1 --output json",
		Description: "Reads HOME/state.db and HOME/chain.db read-only (stop the node first) and checks:\n" +
			"  - each file's two meta pages and that the file is as long as they say;\n" +
			"  - every page, key and value can be read, and bbolt's own consistency check (Tx.Check);\n" +
			"  - every block: it decodes, its hash, height index, previous hash, tx root,\n" +
			"    certificate and receipts agree;\n" +
			"  - the state's latest version follows the block store's height, its tree hashes up\n" +
			"    to its root, the root recomputed from the latest key/values is the same, and it\n" +
			"    is the state root in the header of that height.\n" +
			"It reads every byte of both files: minutes for a large home. Exit code 0 when\n" +
			"everything agrees, 1 on any problem; `plug node resync` is the repair when a backup\n" +
			"is not at hand.",
		Action: nodeCheck,
	}
}

func nodeCheck(c *cli.Context) error {
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	dir, err := nodeHomeArg(c, "check")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, node.ConfigFile)); err != nil {
		return fmt.Errorf("%s is not a node home (no %s): pass --home", dir, node.ConfigFile)
	}
	out := checkOut{Home: dir, Problems: []string{}}
	for _, name := range []string{node.StateDB, node.ChainDB} {
		fc, err := checkFile(o, filepath.Join(dir, name))
		if err != nil {
			return err
		}
		out.Files = append(out.Files, fc)
	}
	fileOK := func(i int) bool { return out.Files[i].Present && len(out.Files[i].Problems) == 0 }
	var st *state.Store
	var bs *store.Store
	if fileOK(0) {
		if st, err = state.Open(out.Files[0].Path, state.WithReadOnly(), state.WithOpenTimeout(time.Second), state.WithNodeCache(0)); err != nil {
			out.Files[0].Problems = append(out.Files[0].Problems, err.Error())
		} else {
			defer st.Close()
		}
	}
	if fileOK(1) {
		if bs, err = store.Open(out.Files[1].Path, store.WithReadOnly(), store.WithOpenTimeout(time.Second)); err != nil {
			out.Files[1].Problems = append(out.Files[1].Problems, err.Error())
			bs = nil
		} else {
			defer bs.Close()
		}
	}
	if bs != nil {
		h := bs.Height()
		out.Height = &h
		bar := newCheckBar(o, "checking blocks", int64(h))
		found, err := bs.Verify(maxFindings, func(h, _ uint64) { bar.set(int64(h)) })
		bar.finish()
		if err != nil {
			found = append(found, err.Error())
		}
		out.Files[1].Problems = append(out.Files[1].Problems, found...)
	}
	if st != nil {
		ver := st.Version()
		out.StateVersion = &ver
		bar := newCheckBar(o, "checking the state tree", -1)
		v, err := st.Verify(func(n int) { bar.set(int64(n)) })
		bar.finish()
		if err != nil {
			out.Files[0].Problems = append(out.Files[0].Problems, err.Error())
		} else {
			out.StateRoot = v.Root.String()
		}
	}
	switch {
	case !out.Files[0].Present && !out.Files[1].Present:
		out.Notes = append(out.Notes, "no databases yet: the node starts at genesis")
	case !out.Files[0].Present:
		out.Notes = append(out.Notes, "no state.db: the node rebuilds it at start by replaying every block of chain.db")
	case !out.Files[1].Present:
		out.Problems = append(out.Problems, "state.db without chain.db: the node refuses to start; move state.db aside (`plug node resync`)")
	case st != nil && bs != nil:
		checkAgree(&out, st, bs)
	}
	out.OK = len(out.Problems) == 0
	for _, f := range out.Files {
		out.OK = out.OK && len(f.Problems) == 0
	}
	if err := o.Emit(out, func(w io.Writer) error { return printCheck(w, &out) }); err != nil {
		return err
	}
	if !out.OK {
		return reportedError{fmt.Errorf("the databases of %s have problems (listed above): restore them from a backup, or run `plug node resync --home %s` and start the node to sync from peers", dir, dir)}
	}
	return nil
}

// checkFile checks one bbolt file: meta pages and size, then a walk of every
// page and bbolt's Tx.Check. A running node (the file's lock) is an error.
func checkFile(o *output, path string) (fileCheck, error) {
	fc := fileCheck{File: filepath.Base(path), Path: path, Problems: []string{}}
	in, err := boltcheck.ReadInfo(path)
	if err != nil {
		return fc, err
	}
	fc.Present, fc.Size = !in.Empty, in.Size
	if in.Empty {
		return fc, nil
	}
	if in.Used != nil {
		fc.PageSize, fc.Pages = in.Used.PageSize, in.Used.Pgid
	}
	if in.Err != nil {
		fc.Problems = append(fc.Problems, in.Err.Detail)
		return fc, nil
	}
	for i, m := range in.Metas {
		if !m.Valid {
			// One bad meta page is what a crash in the middle of a commit leaves;
			// bbolt uses the other. Only both bad is a fault (in.Err).
			fc.Notes = append(fc.Notes, fmt.Sprintf("meta page %d: %s (bbolt uses the other one)", i, m.Problem))
		}
	}
	db, err := boltcheck.Open(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	var fe *boltcheck.Error
	switch {
	case errors.As(err, &fe) && errors.Is(fe, boltcheck.ErrLocked):
		return fc, fmt.Errorf("%s is open in another process: stop the node first, then check", path)
	case errors.As(err, &fe):
		fc.Problems = append(fc.Problems, fe.Detail)
		return fc, nil
	case err != nil:
		fc.Problems = append(fc.Problems, err.Error())
		return fc, nil
	}
	defer db.Close()
	bar := newCheckBar(o, "reading "+fc.File, in.Size)
	ws, err := boltcheck.Walk(db, path, func(n int64) { bar.set(n) })
	bar.finish()
	fc.Keys = ws.Keys
	if errors.As(err, &fe) {
		fc.Problems = append(fc.Problems, fe.Detail)
		return fc, nil // Tx.Check could fault where the walk did
	} else if err != nil {
		fc.Problems = append(fc.Problems, err.Error())
		return fc, nil
	}
	found, err := boltcheck.Check(db, maxFindings)
	if err != nil {
		found = append(found, err.Error())
	}
	for _, f := range found {
		fc.Problems = append(fc.Problems, "bbolt check: "+f)
	}
	return fc, nil
}

// checkAgree compares the state with the block store: the crash-recovery rule
// of docs/storage.md, and the state root against the header of its height.
func checkAgree(out *checkOut, st *state.Store, bs *store.Store) {
	ver, h := st.Version(), bs.Height()
	switch {
	case ver == h+1:
	case ver == h && h > 0:
		out.Notes = append(out.Notes, fmt.Sprintf("the block store is one block ahead of the state (a crash between the two commits): the node re-applies block %d at start", h))
	case ver == 0:
		out.Notes = append(out.Notes, "the state is empty: the node rebuilds it at start by replaying every block of chain.db")
		return
	default:
		out.Problems = append(out.Problems, fmt.Sprintf("the state is at height %d but the block store at %d: not what a crash leaves", int64(ver)-1, h))
		return
	}
	sh := ver - 1 // the height of the state's latest version
	if sh == 0 || out.StateRoot == "" {
		return
	}
	hdr, err := bs.Header(sh)
	if err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("header %d: %v", sh, err))
		return
	}
	out.HeaderStateRoot = hdr.StateRoot.String()
	if out.HeaderStateRoot != out.StateRoot {
		out.Problems = append(out.Problems, fmt.Sprintf("the state root at height %d is %s, but the header of block %d says %s", sh, out.StateRoot, sh, out.HeaderStateRoot))
	}
}

func printCheck(w io.Writer, out *checkOut) error {
	for _, f := range out.Files {
		switch {
		case !f.Present:
			fmt.Fprintf(w, "%-9s absent\n", f.File+":")
		case len(f.Problems) == 0:
			fmt.Fprintf(w, "%-9s ok (%d bytes, %d pages of %d bytes, %d keys)\n", f.File+":", f.Size, f.Pages, f.PageSize, f.Keys)
			for _, n := range f.Notes {
				fmt.Fprintf(w, "  note: %s\n", n)
			}
		default:
			fmt.Fprintf(w, "%-9s DAMAGED\n", f.File+":")
			for _, p := range f.Problems {
				fmt.Fprintf(w, "  - %s\n", p)
			}
		}
	}
	num := func(p *uint64) string {
		if p == nil {
			return "unreadable"
		}
		return fmt.Sprint(*p)
	}
	fmt.Fprintf(w, "height:   %s (state version %s)\n", num(out.Height), num(out.StateVersion))
	if out.StateRoot != "" {
		fmt.Fprintf(w, "state root: %s", out.StateRoot)
		if out.HeaderStateRoot != "" {
			if out.HeaderStateRoot == out.StateRoot {
				fmt.Fprint(w, " (matches the header)")
			} else {
				fmt.Fprintf(w, " (header says %s)", out.HeaderStateRoot)
			}
		}
		fmt.Fprintln(w)
	}
	for _, n := range out.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, p := range out.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	if out.OK {
		fmt.Fprintln(w, "ok: both databases are sound")
	}
	return nil
}

// checkBar is a progress bar on a terminal's standard error (nothing in json
// mode or when standard error is not a terminal). max -1 is a spinner.
type checkBar struct{ b *progressbar.ProgressBar }

func newCheckBar(o *output, desc string, max int64) checkBar {
	f, ok := o.errw.(*os.File)
	if o.JSON() || !ok || !term.IsTerminal(int(f.Fd())) {
		return checkBar{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
	}
	if max > 0 && strings.HasPrefix(desc, "reading") {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	return checkBar{progressbar.NewOptions64(max, opts...)}
}

func (b checkBar) set(n int64) {
	if b.b != nil {
		b.b.Set64(n)
	}
}

func (b checkBar) finish() {
	if b.b != nil {
		b.b.Finish()
	}
}

// resyncOut is `plug node resync` in --output json.
type resyncOut struct {
	Home     string   `json:"home"`
	MovedTo  string   `json:"moved_to"`
	Moved    []string `json:"moved"`
	Kept     []string `json:"kept"`
	Next     string   `json:"next"`
	Warnings []string `json:"warnings,omitempty"`
}

func nodeResyncCommand() *cli.Command {
	return &cli.Command{
		Name:  "resync",
		Usage: "move a stopped node's databases aside so that its next start syncs from peers",
		UsageText: "plug node resync [--home] DIR [--output json]\n\n" +
			"plug node resync --home /srv/plug/val-1",
		Description: "Moves HOME/state.db and HOME/chain.db into HOME/corrupt-<UTC time>/ and keeps\n" +
			"config.toml, genesis.json and node_key.json. The next `plug node start` begins at\n" +
			"genesis and fetches every block, with its certificate, from the peers in p2p.peers,\n" +
			"re-executing each. Refused while the node runs. The moved files stay until you delete\n" +
			"them. For a validator, see docs/storage.md (its record of votes moves with chain.db).",
		Action: func(c *cli.Context) error {
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			dir, err := nodeHomeArg(c, "resync")
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(dir, node.ConfigFile)); err != nil {
				return fmt.Errorf("%s is not a node home (no %s): pass --home", dir, node.ConfigFile)
			}
			// Read what the next start needs before moving anything: a home that
			// cannot start is better fixed first.
			f, err := node.ReadConfig(filepath.Join(dir, node.ConfigFile))
			if err != nil {
				return err
			}
			to, moved, err := node.MoveAside(dir, time.Now())
			if err != nil {
				var fe *boltcheck.Error
				if errors.As(err, &fe) && errors.Is(fe, boltcheck.ErrLocked) {
					return fmt.Errorf("the node of %s is running (%s is locked): stop it first", dir, fe.Path)
				}
				return err
			}
			out := resyncOut{Home: dir, MovedTo: to, Moved: moved, Kept: []string{node.ConfigFile, node.GenesisFile, node.NodeKeyFile},
				Next: fmt.Sprintf("plug node start --home %s", dir)}
			if len(f.P2P.Peers) == 0 {
				out.Warnings = append(out.Warnings, fmt.Sprintf("%s lists no p2p.peers: the node syncs only from peers that dial it; add the address of a healthy node", node.ConfigFile))
			}
			if f.Validator {
				out.Warnings = append(out.Warnings, "this node is a validator: its record of its votes at the height it stopped at moved with chain.db; "+
					"start it once the other validators have decided past that height, or it may vote twice at it")
			}
			return o.Emit(out, func(w io.Writer) error {
				fmt.Fprintf(w, "moved %s of %s to %s\n", strings.Join(moved, " and "), dir, to)
				fmt.Fprintf(w, "kept %s\n", strings.Join(out.Kept, ", "))
				fmt.Fprintf(w, "next: `%s` starts at genesis and syncs every block from its peers;\n", out.Next)
				fmt.Fprintf(w, "      once it has caught up, `plug node check --home %s` should pass and %s can be deleted\n", dir, to)
				for _, x := range out.Warnings {
					fmt.Fprintf(w, "warning: %s\n", x)
				}
				return nil
			})
		},
	}
}

// nodeHomeArg is the node home of `plug node check|resync [HOME]`: the one
// argument, or --home (PLUG_HOME, ~/.plug) without one.
func nodeHomeArg(c *cli.Context, cmd string) (string, error) {
	switch {
	case c.NArg() > 1:
		return "", fmt.Errorf("unexpected argument %q: `plug node %s` takes one node home", c.Args().Get(1), cmd)
	case c.NArg() == 1 && flagString(c, "home") != "":
		return "", fmt.Errorf("give the node home once: as the argument or as --home, not both")
	case c.NArg() == 1:
		return c.Args().First(), nil
	}
	return homeDir(c)
}
