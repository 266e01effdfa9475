package plugcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/export"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/node"
)

// fromExportOut is what `plug genesis from-export` prints.
type fromExportOut struct {
	File        string `json:"file"`
	GenesisHash string `json:"genesis_hash"`
	ChainID     string `json:"chain_id"`
	Export      string `json:"export"`
	ExportSHA   string `json:"export_sha256"`
	OldChainID  string `json:"old_chain_id"`
	Height      uint64 `json:"height"`
	StateRoot   string `json:"state_root"`
	Validators  int    `json:"validators"`
	// ValidatorsReplaced is true when --validators gave a new set.
	ValidatorsReplaced bool `json:"validators_replaced"`
}

func genesisFromExportCommand() *cli.Command {
	return &cli.Command{
		Name:  "from-export",
		Usage: "build the genesis of a new chain that starts from a state export",
		UsageText: "plug genesis from-export --export FILE --chain-id NEW [--validators FILE] [--out genesis.json]\n\n" +
			"plug genesis from-export --export bank-a-1200.export --chain-id bank-a-2\n" +
			"plug genesis from-export --export bank-a-1200.export --chain-id bank-a-2 --validators new-set.json --out /tmp/g/genesis.json",
		Description: "Recovery when fewer than a quorum of a chain's validators survive (docs/operator.md). The export\n" +
			"(`plug node export`) is checked whole first: its entries must hash to the state root of its block\n" +
			"header, and its commit certificate must carry a quorum of the validator set that signed that\n" +
			"height. The genesis written names the export by file name and SHA-256 (state_import, see\n" +
			"docs/genesis.md) and records the old chain id, height, state root and header hash; the export is\n" +
			"copied next to it unless it is there already. Copy both files into every node's home.\n\n" +
			"The validators are those of the state at the exported height, unless --validators names a JSON\n" +
			"file with the operators' new set, in the form of the genesis \"validators\" array:\n" +
			"[{\"name\": \"val-1\", \"pub_key\": {\"scheme\": \"ed25519\", \"key\": \"HEX\"}, \"power\": 100}, ...].",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "export", Usage: "the state export ('plug node export')"},
			&cli.StringFlag{Name: "chain-id", Usage: "the new chain's id (must differ from the old one)"},
			&cli.StringFlag{Name: "validators", Usage: "a JSON file with the new validator set (default: the exported one)"},
			&cli.StringFlag{Name: "out", Value: node.GenesisFile, Usage: "the genesis file to write"},
			&cli.StringFlag{Name: "genesis-time", Usage: "RFC 3339 start time of the new chain (default: now)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite --out if it exists"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q: see `%s --help`", c.Args().First(), commandPath(c))
			}
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			exp, chainID, out := c.String("export"), c.String("chain-id"), c.String("out")
			switch {
			case exp == "":
				return errors.New("missing --export FILE: the state export written by `plug node export`")
			case chainID == "":
				return errors.New("missing --chain-id: the new chain's id, e.g. the old one with a suffix (bank-a-2)")
			}
			if _, err := os.Stat(out); err == nil && !c.Bool("force") {
				return fmt.Errorf("%s exists: pass --force to overwrite it, or another --out", out)
			}
			hdr, entries, sum, err := export.ReadFile(exp)
			if err != nil {
				return err
			}
			if err := export.Verify(hdr, entries); err != nil {
				return fmt.Errorf("refusing %s: %w", exp, err)
			}
			entries = nil
			if chainID == hdr.ChainID {
				return fmt.Errorf("--chain-id %s is the exported chain's id: the new chain needs another one, so that the old chain's signed transactions and certificates are not valid on it", chainID)
			}
			gt := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
			if s := c.String("genesis-time"); s != "" {
				gt = s
			}
			var vals []genesis.Validator
			if vf := c.String("validators"); vf != "" {
				if vals, err = readValidators(vf); err != nil {
					return err
				}
			} else {
				o.Warn("the new chain keeps the validator set of height %d (%d validators): if validators were lost, it will not reach a quorum either; "+
					"give the operators' new set with --validators FILE", hdr.Height, len(hdr.Validators))
				for i, v := range hdr.Validators {
					vals = append(vals, genesis.Validator{Name: "val-" + strconv.Itoa(i+1), PubKey: genesis.FromPublicKey(v.PubKey), Power: v.Power})
				}
			}
			d := &genesis.Doc{ChainID: chainID, GenesisTime: gt, Validators: vals, Roles: []genesis.Role{}, Assets: []genesis.Asset{}, StateImport: &genesis.StateImport{
				File: filepath.Base(exp), SHA256: sum, ChainID: hdr.ChainID, GenesisHash: hdr.GenesisHash.String(),
				Height: hdr.Height, StateRoot: hdr.StateRoot.String(), HeaderHash: hdr.HeaderHash.String(),
			}}
			if err := validateDoc(d); err != nil {
				return fmt.Errorf("the new genesis is not valid, nothing was written:\n%w", err)
			}
			// The export goes next to the genesis, where state_import names it.
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			dst := filepath.Join(filepath.Dir(out), filepath.Base(exp))
			if err := copyIfOther(exp, dst); err != nil {
				return err
			}
			if err := node.WriteGenesis(out, d); err != nil {
				return err
			}
			// What was written must load and yield a state, as a node will do.
			nd, err := genesis.Load(out)
			if err == nil {
				_, err = nd.Changes(nil)
			}
			if err != nil {
				return fmt.Errorf("the written genesis does not load: %w", err)
			}
			res := fromExportOut{File: out, GenesisHash: nd.Hash().String(), ChainID: chainID, Export: dst, ExportSHA: sum,
				OldChainID: hdr.ChainID, Height: hdr.Height, StateRoot: hdr.StateRoot.String(), Validators: len(vals),
				ValidatorsReplaced: c.String("validators") != ""}
			return o.Emit(res, func(w io.Writer) error {
				return o.Fields([][2]string{{"genesis", out}, {"genesis hash", res.GenesisHash}, {"chain", chainID},
					{"imports", fmt.Sprintf("%s (sha256 %s)", dst, sum)},
					{"from", fmt.Sprintf("chain %s at height %d, state root %s", hdr.ChainID, hdr.Height, hdr.StateRoot)},
					{"validators", strconv.Itoa(len(vals))},
					{"next", "copy " + out + " and " + dst + " into every node's home, set chain_id = \"" + chainID + "\" in config.toml, start"}})
			})
		},
	}
}

// readValidators reads a JSON array of genesis validators.
func readValidators(path string) ([]genesis.Validator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--validators: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var vals []genesis.Validator
	if err := dec.Decode(&vals); err != nil {
		return nil, fmt.Errorf("--validators %s: %w (want [{\"name\": ..., \"pub_key\": {\"scheme\": \"ed25519\", \"key\": \"HEX\"}, \"power\": N}, ...])", path, err)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("--validators %s: no validators", path)
	}
	return vals, nil
}

// copyIfOther copies src to dst unless they are the same file.
func copyIfOther(src, dst string) error {
	si, err := os.Stat(src)
	if err != nil {
		return err
	}
	if di, err := os.Stat(dst); err == nil && os.SameFile(si, di) {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	_, err = io.Copy(f, in)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return os.Rename(tmp, dst)
}
