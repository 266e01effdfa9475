package plugcli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/plugchain/plug/chain/export"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/store"
)

// exportOut is what `plug node export` prints.
type exportOut struct {
	File        string `json:"file"`
	SHA256      string `json:"sha256"`
	ChainID     string `json:"chain_id"`
	GenesisHash string `json:"genesis_hash"`
	Height      uint64 `json:"height"`
	StateRoot   string `json:"state_root"`
	HeaderHash  string `json:"header_hash"`
	Entries     uint64 `json:"entries"`
	Validators  int    `json:"validators"`
	Bytes       int64  `json:"bytes"`
}

func nodeExportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write the whole state of a committed height, with its header and certificate, to a file",
		UsageText: "plug node export --home DIR [--height H] [--out FILE]\n\n" +
			"plug node export --home /srv/plug/val-1 --height 1200 --out bank-a-1200.export\n" +
			"plug node export --home ./val-1 --output json",
		Description: "For recovery when fewer than a quorum of the validators survive (docs/operator.md): the file\n" +
			"holds every key and value of the state after block H (default: the node's latest), the block\n" +
			"header of H, its commit certificate, the validator sets, the chain id and the genesis hash\n" +
			"(format plug-export/1, docs/genesis.md). It is checked before the command succeeds: the\n" +
			"entries must hash to the header's state root and the certificate must carry a quorum.\n" +
			"`plug genesis from-export` builds a new chain's genesis from it. The node must be stopped:\n" +
			"its databases are opened read-only, and a running node holds them.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "height", Usage: "the committed height to export (default: the latest)"},
			&cli.StringFlag{Name: "out", Usage: "the file to write (default: CHAIN-H.export in the current directory)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite --out if it exists"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q: `plug node export` takes flags only", c.Args().First())
			}
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			dir, err := homeDir(c)
			if err != nil {
				return err
			}
			gen, err := genesis.Load(filepath.Join(dir, node.GenesisFile))
			if err != nil {
				return fmt.Errorf("%w\n(the export records the hash of the chain's genesis; run it on a node home)", err)
			}
			src, closeSrc, err := openExportSource(dir, gen)
			if err != nil {
				return err
			}
			defer closeSrc()
			var plan *export.Plan
			err = waitBar(o, "reading the state", func() error {
				var err error
				plan, err = src.Prepare(c.Uint64("height"))
				return err
			})
			if err != nil {
				return err
			}
			h := &plan.Header
			out := c.String("out")
			if out == "" {
				out = h.ChainID + "-" + strconv.FormatUint(h.Height, 10) + ".export"
			}
			if _, err := os.Stat(out); err == nil && !c.Bool("force") {
				return fmt.Errorf("%s exists: pass --force to overwrite it, or another --out", out)
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			tmp := out + ".tmp"
			f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			defer os.Remove(tmp)
			bar := exportBar(o, h.Entries, fmt.Sprintf("exporting height %d", h.Height))
			var progress func(uint64)
			if bar != nil {
				progress = func(n uint64) {
					if n%1024 == 0 || n == h.Entries {
						bar.Set64(int64(n))
					}
				}
			}
			err = plan.Write(f, progress)
			if bar != nil {
				bar.Finish()
			}
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("export to %s: %w", out, err)
			}
			// Read back what was written and check it whole, as from-export will.
			rh, entries, sum, err := export.ReadFile(tmp)
			if err == nil {
				err = export.Verify(rh, entries)
			}
			if err != nil {
				return fmt.Errorf("the written export does not verify (nothing was kept): %w", err)
			}
			if err := os.Rename(tmp, out); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			st, _ := os.Stat(out)
			res := exportOut{File: out, SHA256: sum, ChainID: h.ChainID, GenesisHash: h.GenesisHash.String(), Height: h.Height,
				StateRoot: h.StateRoot.String(), HeaderHash: h.HeaderHash.String(), Entries: h.Entries,
				Validators: len(h.Validators)}
			if st != nil {
				res.Bytes = st.Size()
			}
			return o.Emit(res, func(w io.Writer) error {
				return o.Fields([][2]string{{"file", out}, {"sha256", sum}, {"chain", h.ChainID}, {"height", strconv.FormatUint(h.Height, 10)},
					{"state root", h.StateRoot.String()}, {"header hash", h.HeaderHash.String()},
					{"entries", strconv.FormatUint(h.Entries, 10)}, {"validators", strconv.Itoa(len(h.Validators))},
					{"next", "compare header hash and state root with the other operators; then plug genesis from-export --export " + out + " --chain-id NEW"}})
			})
		},
	}
}

// openExportSource opens a stopped node's databases read-only.
func openExportSource(dir string, gen *genesis.Doc) (*export.Source, func(), error) {
	const wait = 2 * time.Second
	running := func(err error) error {
		return fmt.Errorf("the node of %s is running (it holds its databases): stop it (SIGTERM, or `plug testnet down`) and export again: %w", dir, err)
	}
	sp, cp := filepath.Join(dir, node.StateDB), filepath.Join(dir, node.ChainDB)
	for _, p := range []string{sp, cp} {
		if _, err := os.Stat(p); err != nil {
			return nil, nil, fmt.Errorf("%s has no %s: it is not the home of a node that has run (%v)", dir, filepath.Base(p), err)
		}
	}
	st, err := state.Open(sp, state.WithReadOnly(), state.WithOpenTimeout(wait), state.WithNodeCache(0)) // a walk reads each node once
	if errors.Is(err, state.ErrLocked) {
		return nil, nil, running(err)
	}
	if err != nil {
		return nil, nil, err
	}
	bs, err := store.Open(cp, store.WithReadOnly(), store.WithOpenTimeout(wait))
	if err != nil {
		st.Close()
		if errors.Is(err, store.ErrLocked) {
			return nil, nil, running(err)
		}
		return nil, nil, err
	}
	return &export.Source{State: st, Blocks: bs, GenesisHash: gen.Hash()}, func() { bs.Close(); st.Close() }, nil
}

// exportBar returns a progress bar of total entries on a terminal (never in
// json mode), else nil.
func exportBar(o *output, total uint64, desc string) *progressbar.ProgressBar {
	if o.JSON() || o.errw != os.Stderr || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(int64(total),
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
	)
}
