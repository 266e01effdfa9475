package plugcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain/shard"
	"github.com/plugchain/plug/settlement"
	"github.com/plugchain/plug/testnet"
)

// How `plug settle status` and `plug xchain status` find a trade: by its
// full id on the chains (every chain keeps the terms of the trades that ran
// a step there), by a prefix of its id in the local trade store, or by a
// party's reference on the chains.

// foundTrade is a trade the status commands found, and where.
type foundTrade struct {
	rec *record
	// Source says where the terms came from: "chain" (FoundOn names it),
	// "store" (this machine's trade store) or "file" (--xtx).
	Source   string `json:"source"`
	FoundOn  string `json:"found_on,omitempty"`
	Verified bool   `json:"terms_verified,omitempty"`
}

// findTrade resolves the trade a status command names: ID (full or a
// prefix) as its argument, or --ref R [--party P].
func (x *xenv) findTrade(c *cli.Context, group string) (*foundTrade, error) {
	ref, party := c.String("ref"), c.String("party")
	switch {
	case ref != "" && c.NArg() > 0:
		return nil, fmt.Errorf("give the trade's id or --ref, not both")
	case ref == "" && party != "":
		return nil, errors.New("--party names whose reference --ref is: give --ref too")
	case ref != "":
		if c.String("xtx") != "" {
			return nil, errors.New("give --ref or --xtx, not both")
		}
		return x.findByRef(ref, party, c.Bool("prove"))
	case c.NArg() != 1:
		return nil, fmt.Errorf("give the trade's id (`plug %s status ID`, as printed by `plug settle dvp`) or --ref R --party P", group)
	}
	id, prefix, err := settlement.ParseIDOrPrefix(c.Args().First())
	if err != nil {
		return nil, err
	}
	if prefix != "" {
		if id, err = x.idByPrefix(prefix); err != nil {
			return nil, err
		}
	}
	if f := c.String("xtx"); f != "" {
		rec, err := readXTxFile(f, id)
		if err != nil {
			return nil, err
		}
		return &foundTrade{rec: rec, Source: "file"}, nil
	}
	return x.findByID(id, c.Bool("prove"))
}

// findByID reads trade id's terms from the chains (the first that holds
// them) and, when none does yet, from the trade store: a trade whose
// prepares have not run anywhere is only known to the machine that made it.
func (x *xenv) findByID(id hash.Hash, prove bool) (*foundTrade, error) {
	chains := x.chainIDs()
	t, err := settlement.LookupID(x.ctx(), x.readers(), chains, id, prove)
	switch {
	case err == nil:
		f := &foundTrade{rec: &record{XTx: t.XTx}, Source: "chain", FoundOn: t.Chain, Verified: t.Verified}
		if r, err := x.load(id); err == nil {
			f.rec.Kind = r.Kind
		}
		return f, nil
	case !errors.Is(err, settlement.ErrTradeNotFound):
		return nil, err
	}
	if x.store != "" {
		if r, err := x.load(id); err == nil {
			return &foundTrade{rec: r, Source: "store"}, nil
		}
	}
	return nil, fmt.Errorf("trade %s is on none of the chains %v (no prepare or decide of it ran there) and not in the trade store %s: "+
		"check the id and the chains (--testnet DIR or --node CHAIN=URL for each of its chains)", id.Short(), chains, x.storeName())
}

// findByRef finds the trade under party's reference ref on the chains. With
// no party, the trade store must know exactly one trade under ref.
func (x *xenv) findByRef(ref, party string, prove bool) (*foundTrade, error) {
	if party == "" {
		recs, err := x.storeRecords()
		if err != nil {
			return nil, err
		}
		var ids []hash.Hash
		for _, r := range recs {
			if r.XTx.Ref == ref {
				ids = append(ids, r.XTx.ID())
			}
		}
		if len(ids) != 1 {
			return nil, fmt.Errorf("a reference belongs to a party: give --party P (a key of the keyring or an address) " +
				"with --ref, e.g. the seller's or the buyer's")
		}
		return x.findByID(ids[0], prove)
	}
	addr, err := x.partyAddress(party)
	if err != nil {
		return nil, err
	}
	t, others, err := settlement.FindRef(x.ctx(), x.readers(), x.chainIDs(), addr, ref, prove)
	if errors.Is(err, settlement.ErrRefNotFound) {
		return nil, fmt.Errorf("no trade of %s under reference %q on the chains %v: check the reference and the party (a paying party's reference: the From of a leg)",
			party, ref, x.chainIDs())
	}
	if err != nil {
		return nil, err
	}
	for _, o := range others {
		x.out.Warn("another trade %s under reference %q of %s ran a step on some chain; its coordinator does not know it as the trade of that reference", o.String()[:12], ref, party)
	}
	f := &foundTrade{rec: &record{XTx: t.XTx}, Source: "chain", FoundOn: t.Chain, Verified: t.Verified}
	if r, err := x.load(t.ID); err == nil {
		f.rec.Kind = r.Kind
	}
	return f, nil
}

// partyAddress resolves --party: an address (40 hex digits) or a key of the
// keyring (only its public part is read).
func (x *xenv) partyAddress(v string) (crypto.Address, error) {
	if a, err := crypto.ParseAddress(strings.TrimPrefix(v, "0x")); err == nil {
		return a, nil
	}
	kr, err := x.keyring()
	if err != nil {
		return crypto.Address{}, fmt.Errorf("--party %s: not an address, and %w", v, err)
	}
	info, err := kr.Resolve(v)
	if err != nil {
		return crypto.Address{}, fmt.Errorf("--party %s: %w (give the party's address if its key is not in this keyring)", v, err)
	}
	return info.Address, nil
}

// storeName is the trade store directory, for messages.
func (x *xenv) storeName() string {
	if x.store == "" {
		return "(none)"
	}
	return x.store
}

// storeRecords reads every record of the trade store (none when it does not
// exist), in file name order.
func (x *xenv) storeRecords() ([]record, error) {
	if x.store == "" {
		return nil, nil
	}
	files, err := filepath.Glob(filepath.Join(x.store, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []record
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || len(r.XTx.Legs) == 0 {
			x.out.Warn("%s is not a trade record: skipped", f)
			continue
		}
		if strings.TrimSuffix(filepath.Base(f), ".json") != r.XTx.ID().String() {
			x.out.Warn("%s holds another trade than its name says: skipped", f)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// idByPrefix resolves an id prefix: through the trade store when it knows
// the trade, else through the chains' transaction indexes (searchPrefix).
func (x *xenv) idByPrefix(prefix string) (hash.Hash, error) {
	id, n, err := x.storeIDByPrefix(prefix)
	if n == 0 {
		return x.searchPrefix(prefix, time.Time{})
	}
	return id, err
}

// storeIDByPrefix resolves an id prefix through the trade store; n is how
// many of its trades start with it.
func (x *xenv) storeIDByPrefix(prefix string) (id hash.Hash, n int, err error) {
	var match []string
	if x.store != "" {
		files, err := filepath.Glob(filepath.Join(x.store, prefix+"*.json"))
		if err != nil {
			return hash.Hash{}, 0, err
		}
		for _, f := range files {
			if name := strings.TrimSuffix(filepath.Base(f), ".json"); len(name) == 2*hash.Size {
				match = append(match, name)
			}
		}
	}
	switch len(match) {
	case 1:
		id, err := settlement.ParseID(match[0])
		return id, 1, err
	case 0:
		return hash.Hash{}, 0, fmt.Errorf("no trade %s… in the trade store %s", prefix, x.storeName())
	}
	sort.Strings(match)
	return hash.Hash{}, len(match), fmt.Errorf("%d trades of the trade store start with %s (%s…, %s…): give more digits",
		len(match), prefix, match[0][:16], match[1][:16])
}

// networkFlag lets the read-only trade commands name the chains by a
// network file (the shards of a logical network), as single-chain commands do.
func networkFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "network",
		Usage: "read the shards of the logical network declared in `FILE` (e.g. DIR/network.toml of plug testnet up --shards N; instead of --testnet or --node)",
	}
}

// newLookupEnv is newXEnv for the commands that read trades: --network FILE
// names the chains too.
func newLookupEnv(c *cli.Context) (*xenv, error) {
	f := c.String("network")
	if f == "" {
		return newXEnv(c)
	}
	if c.String("testnet") != "" || len(c.StringSlice("node")) > 0 {
		return nil, errors.New("give --network, --testnet or --node, not several")
	}
	x, err := newXEnvFor(c, false)
	if err != nil {
		return nil, err
	}
	e := &env{c: c, out: x.out}
	if err := e.useNetworkShards(f); err != nil {
		return nil, err
	}
	for _, id := range e.shards.Network().ChainIDs() {
		if x.clients[id], err = e.shards.Chain(id); err != nil {
			return nil, err
		}
	}
	x.testnetKeys = e.testnetKeys
	x.store = e.tradeStore()
	if s := c.String("store"); s != "" {
		x.store = s
	}
	return x, nil
}

// useNetworkShards is useNetwork without picking one shard: it connects to
// every shard of the network file.
func (e *env) useNetworkShards(path string) error {
	net, err := shard.Load(path)
	if err != nil {
		return fmt.Errorf("%w (see docs/sharding.md)", err)
	}
	if e.shards, err = shard.NewClient(net, shard.WithClientOptions(client.WithTimeout(e.c.Duration("request-timeout")))); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(filepath.Join(dir, testnet.ManifestFile)); err == nil {
		e.testnetKeys = filepath.Join(dir, testnet.KeyringDir)
	}
	return nil
}
