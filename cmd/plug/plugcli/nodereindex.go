package plugcli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/node"
)

// reindexOut is `plug node reindex` in --output json.
type reindexOut struct {
	Home     string  `json:"home"`
	Index    string  `json:"index"`
	Heights  uint64  `json:"heights"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	Disabled bool    `json:"disabled,omitempty"`
}

func nodeReindexCommand() *cli.Command {
	return &cli.Command{
		Name:  "reindex",
		Usage: "rebuild a stopped node's transaction index (index.db) from its block store",
		UsageText: "plug node reindex [--home] DIR [--output json]\n\n" +
			"plug node reindex /srv/plug/val-1\n" +
			"plug node reindex --home ./val-1 --output json",
		Description: "Reads HOME/chain.db read-only (stop the node first: it refuses while the node runs) and writes\n" +
			"a new HOME/index.db from every stored block (the last storage.index_max_heights heights when that is\n" +
			"set), replacing the old one only when done. A node catches its index up by itself on start; reindex\n" +
			"is for an index.db that was deleted, damaged, or built by older software.",
		Action: func(c *cli.Context) error {
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			dir, err := nodeHomeArg(c, "reindex")
			if err != nil {
				return err
			}
			h, err := node.LoadHome(dir, app.Registry(), app.Models())
			if err != nil {
				return err
			}
			out := reindexOut{Home: dir, Index: filepath.Join(dir, node.IndexFile)}
			if h.Config.NoIndex {
				o.Warn("storage.index is off in %s: the node will not use the rebuilt index", filepath.Join(dir, node.ConfigFile))
				out.Disabled = true
			}
			start := time.Now()
			var bar checkBar
			err = node.Reindex(dir, app.Registry(), h.Config.ChainID, h.Config.IndexMaxHeights, func(done, total uint64) {
				if bar.b == nil {
					bar = newCheckBar(o, "indexing blocks", int64(total))
				}
				bar.set(int64(done))
				out.Heights = total
			})
			bar.finish()
			if err != nil {
				return err
			}
			out.Seconds = time.Since(start).Seconds()
			if st, err := os.Stat(out.Index); err == nil {
				out.Bytes = st.Size()
			}
			return o.Emit(out, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "rebuilt %s: %d heights, %d bytes, in %.1fs\n", out.Index, out.Heights, out.Bytes, out.Seconds)
				return err
			})
		},
	}
}
