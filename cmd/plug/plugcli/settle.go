package plugcli

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
	"github.com/plugchain/plug/testnet"
)

// settleCommand returns `plug settle`.
func settleCommand() *cli.Command {
	return &cli.Command{
		Name:  "settle",
		Usage: "settle DvP and PvP trades across chains, all legs or none",
		UsageText: "plug settle dvp --testnet DIR --seller KEY --buyer KEY --delivery CHAIN:ASSET:AMOUNT --payment CHAIN:ASSET:AMOUNT [--wait]\n" +
			"plug settle pvp --testnet DIR --party1 KEY --party2 KEY --leg1 CHAIN:ASSET:AMOUNT --leg2 CHAIN:ASSET:AMOUNT [--wait]\n" +
			"plug settle batch --testnet DIR --trade FROM:TO:CHAIN:ASSET:AMOUNT ... [--wait]\n" +
			"plug settle instruct --as KEY ... --out A.json; plug settle match A.json B.json --testnet DIR --from KEY\n" +
			"plug settle status ID --testnet DIR",
		Description: "A trade is one crosschain transaction (docs/settlement.md): every party signs it, each leg is\n" +
			"prepared (escrowed) on its chain, the coordinator chain decides, and each leg then completes or is\n" +
			"refunded. Relays carry the proofs between chains: run `plug relay start` next to the chains.",
		Subcommands: []*cli.Command{settleDvPCommand(), settlePvPCommand(), settleBatchCommand(), settleInstructCommand(), settleMatchCommand(), settleStatusCommand("settle")},
	}
}

// xchainFlags are the flags of commands that talk to several chains.
func xchainFlags(extra ...cli.Flag) []cli.Flag {
	fl := append(extra,
		&cli.StringFlag{
			Name:  "testnet",
			Usage: "use the local testnet in this directory: its chains and its test keyring DIR/keys",
		},
		&cli.StringSliceFlag{
			Name:  "node",
			Usage: "a chain's gateway as CHAIN=URL, e.g. alpha=http://127.0.0.1:26657 (repeat for each chain; instead of --testnet)",
		},
		&cli.StringFlag{
			Name:  "store",
			Usage: "directory where submitted trades are recorded for plug settle status (default: DIR/settlements, else HOME/settlements)",
		},
		&cli.DurationFlag{Name: "request-timeout", Value: 10 * time.Second, Usage: "timeout of each request to a node"},
	)
	return append(fl, keyringFlags()...)
}

// xenv is what a multi-chain command works with.
type xenv struct {
	*env
	clients map[string]*client.Client
	store   string
}

func newXEnv(c *cli.Context) (*xenv, error) { return newXEnvFor(c, true) }

// newXEnvFor is newXEnv; without needChains, a command that only signs may run
// with neither --testnet nor --node.
func newXEnvFor(c *cli.Context, needChains bool) (*xenv, error) {
	o, err := newOutput(c)
	if err != nil {
		return nil, err
	}
	x := &xenv{env: &env{c: c, out: o}, clients: map[string]*client.Client{}}
	opts := func(id string) []client.Option {
		return []client.Option{client.WithTimeout(c.Duration("request-timeout")), client.WithChainID(id)}
	}
	dir, nodes := c.String("testnet"), c.StringSlice("node")
	switch {
	case dir != "" && len(nodes) > 0:
		return nil, errors.New("give --testnet or --node CHAIN=URL, not both")
	case dir != "":
		if err := x.useTestnet(dir, c.Duration("request-timeout")); err != nil {
			return nil, err
		}
	case len(nodes) > 0:
		byChain := map[string][]string{}
		for _, n := range nodes {
			for _, p := range strings.Split(n, ",") {
				id, url, ok := strings.Cut(p, "=")
				if !ok || id == "" || url == "" {
					return nil, fmt.Errorf("--node %q: want CHAIN=URL, e.g. alpha=http://127.0.0.1:26657", p)
				}
				byChain[id] = append(byChain[id], url)
			}
		}
		for id, eps := range byChain {
			if x.clients[id], err = client.New(eps, opts(id)...); err != nil {
				return nil, err
			}
		}
		home, err := homeDir(c)
		if err != nil {
			return nil, err
		}
		x.store = filepath.Join(home, "settlements")
	case !needChains:
	default:
		return nil, errors.New("no chains to talk to: pass --testnet DIR (a `plug testnet up` directory) or --node CHAIN=URL for each chain")
	}
	if s := c.String("store"); s != "" {
		x.store = s
	}
	return x, nil
}

// useTestnet points x at the chains, the keyring and the trade store of the
// local testnet in dir; requests to its nodes time out after timeout.
func (x *xenv) useTestnet(dir string, timeout time.Duration) error {
	m, err := testnet.LoadManifest(dir)
	if err != nil {
		return err
	}
	base := m.Dir
	if base == "" {
		base = dir
	}
	for _, ch := range m.Chains {
		if x.clients[ch.ChainID], err = client.New(ch.Endpoints(), client.WithTimeout(timeout), client.WithChainID(ch.ChainID)); err != nil {
			return err
		}
	}
	x.testnetKeys = filepath.Join(base, testnet.KeyringDir)
	x.store = filepath.Join(base, "settlements")
	return nil
}

// readers returns the clients as settlement readers.
func (x *xenv) readers() map[string]settlement.Reader {
	out := map[string]settlement.Reader{}
	for id, c := range x.clients {
		out[id] = c
	}
	return out
}

// chainIDs returns the known chains, sorted.
func (x *xenv) chainIDs() []string {
	var ids []string
	for id := range x.clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// partyKey resolves a keyring name (or address) to its private key: parties sign.
func (x *xenv) partyKey(flag, v string) (crypto.PrivateKey, string, error) {
	if v == "" {
		return nil, "", fmt.Errorf("missing --%s: name a key of the keyring (see `plug keys list`)", flag)
	}
	kr, err := x.keyring()
	if err != nil {
		return nil, "", err
	}
	info, err := kr.Resolve(v)
	if err != nil {
		return nil, "", fmt.Errorf("--%s %s: %w: every party signs the trade, so its key must be in the keyring", flag, v, err)
	}
	k, err := kr.Get(info.Name)
	if err != nil {
		return nil, "", fmt.Errorf("--%s %s: %w", flag, v, err)
	}
	return k, info.Name, nil
}

// tradeFlags are the flags shared by dvp and pvp.
func tradeFlags(extra ...cli.Flag) []cli.Flag {
	return xchainFlags(append(extra,
		&cli.StringFlag{Name: "coordinator", Usage: "chain that decides (default: the first leg's chain)"},
		&cli.DurationFlag{Name: "deadline", Value: 30 * time.Second, Usage: "how long from now the trade may take to commit (on the coordinator's clock); after it, it aborts"},
		&cli.StringFlag{Name: "ref", Usage: "trade reference (default: a new one, printed): the chains let one trade per paying party and reference settle, " +
			"so running the command again with the same ref and terms reports (and resumes) the trade instead of making another; other terms are refused"},
		&cli.BoolFlag{Name: "wait", Usage: "wait until the trade is final (every leg committed or every leg aborted) and print it"},
		&cli.DurationFlag{Name: "timeout", Value: 90 * time.Second, Usage: "how long --wait waits"},
		&cli.BoolFlag{Name: "no-coordinator-prepare", Usage: "submit no prepare for the legs on the coordinator: the relay's decide prepares and settles them in one transaction (one chain transaction fewer; the payer's asset is not locked before the decision)"},
	)...)
}

func settleDvPCommand() *cli.Command {
	return &cli.Command{
		Name:  "dvp",
		Usage: "delivery versus payment: an asset from seller to buyer against payment from buyer to seller",
		UsageText: "plug settle dvp --seller KEY --buyer KEY --delivery CHAIN:ASSET:AMOUNT --payment CHAIN:ASSET:AMOUNT [flags]\n\n" +
			"plug settle dvp --testnet ./tn --seller alice --buyer bob --delivery alpha:EUR:100 --payment beta:USD:110 --wait\n" +
			"plug settle dvp --testnet ./tn --seller alice --buyer bob --delivery alpha:EUR:5 --payment beta:USD:6 --coordinator beta --deadline 1m --wait --output json",
		Description: "Both parties sign the trade with their keyring keys; each signs and submits xchain/prepare of the\n" +
			"leg it pays. With --wait the command returns when the trade is final and prints its id, its status\n" +
			"(committed or aborted), each leg's chain and status, and the reason of an abort. The exit code is 1\n" +
			"when the trade aborted or is not final within --timeout.",
		Flags: tradeFlags(
			&cli.StringFlag{Name: "seller", Usage: "party delivering the asset: a keyring key"},
			&cli.StringFlag{Name: "buyer", Usage: "party paying: a keyring key"},
			&cli.StringFlag{Name: "delivery", Usage: "what the seller delivers: CHAIN:ASSET:AMOUNT"},
			&cli.StringFlag{Name: "payment", Usage: "what the buyer pays: CHAIN:ASSET:AMOUNT"},
		),
		Action: func(c *cli.Context) error {
			return tradeAction(c, func(x *xenv) (settlement.Trade, []crypto.PrivateKey, error) {
				sk, bk, d, p, err := twoSided(c, x, "seller", "buyer", "delivery", "payment")
				if err != nil {
					return settlement.Trade{}, nil, err
				}
				return settlement.DvP(sk.Public().Address(), bk.Public().Address(), d, p), []crypto.PrivateKey{sk, bk}, nil
			})
		},
	}
}

func settlePvPCommand() *cli.Command {
	return &cli.Command{
		Name:  "pvp",
		Usage: "payment versus payment: one currency against another, or any set of legs",
		UsageText: "plug settle pvp --party1 KEY --party2 KEY --leg1 CHAIN:ASSET:AMOUNT --leg2 CHAIN:ASSET:AMOUNT [flags]\n" +
			"plug settle pvp --leg FROM:TO:CHAIN:ASSET:AMOUNT --leg ... [flags]\n\n" +
			"plug settle pvp --testnet ./tn --party1 alice --party2 bob --leg1 alpha:USD:100 --leg2 beta:EUR:92 --wait\n" +
			"plug settle pvp --testnet ./tn --leg alice:bob:alpha:USD:10 --leg bob:carol:beta:EUR:9 --leg carol:alice:gamma:USD:8 --wait",
		Description: "--leg1 is paid by party1 to party2 and --leg2 by party2 to party1. Repeated --leg gives any number\n" +
			"of legs between any parties (FROM and TO are keyring keys). Every party that pays signs the trade.",
		Flags: tradeFlags(
			&cli.StringFlag{Name: "party1", Usage: "party paying --leg1: a keyring key"},
			&cli.StringFlag{Name: "party2", Usage: "party paying --leg2: a keyring key"},
			&cli.StringFlag{Name: "leg1", Usage: "what party1 pays party2: CHAIN:ASSET:AMOUNT"},
			&cli.StringFlag{Name: "leg2", Usage: "what party2 pays party1: CHAIN:ASSET:AMOUNT"},
			&cli.StringSliceFlag{Name: "leg", Usage: "a leg FROM:TO:CHAIN:ASSET:AMOUNT (repeat; instead of --party1/--party2/--leg1/--leg2)"},
		),
		Action: func(c *cli.Context) error {
			return tradeAction(c, func(x *xenv) (settlement.Trade, []crypto.PrivateKey, error) {
				if legs := c.StringSlice("leg"); len(legs) > 0 {
					if c.IsSet("leg1") || c.IsSet("leg2") {
						return settlement.Trade{}, nil, errors.New("give --leg1/--leg2 or repeated --leg, not both")
					}
					return multiLegTrade(x, legs)
				}
				k1, k2, l1, l2, err := twoSided(c, x, "party1", "party2", "leg1", "leg2")
				if err != nil {
					return settlement.Trade{}, nil, err
				}
				return settlement.PvP(k1.Public().Address(), k2.Public().Address(), l1, l2), []crypto.PrivateKey{k1, k2}, nil
			})
		},
	}
}

// twoSided reads the two parties' keys and the two legs of a two-sided trade
// from the flags named a, b (parties) and la, lb (legs).
func twoSided(c *cli.Context, x *xenv, a, b, la, lb string) (ka, kb crypto.PrivateKey, legA, legB settlement.LegSpec, err error) {
	if ka, _, err = x.partyKey(a, c.String(a)); err != nil {
		return
	}
	if kb, _, err = x.partyKey(b, c.String(b)); err != nil {
		return
	}
	if legA, err = legFlag(c, la); err != nil {
		return
	}
	legB, err = legFlag(c, lb)
	return
}

// multiLegTrade reads repeated --leg FROM:TO:CHAIN:ASSET:AMOUNT.
func multiLegTrade(x *xenv, legs []string) (settlement.Trade, []crypto.PrivateKey, error) {
	t := settlement.Trade{Kind: settlement.PvPKind}
	var keys []crypto.PrivateKey
	for _, v := range legs {
		parts := strings.SplitN(v, ":", 3)
		if len(parts) != 3 {
			return t, nil, fmt.Errorf("--leg %q: want FROM:TO:CHAIN:ASSET:AMOUNT, e.g. alice:bob:alpha:USD:10", v)
		}
		fk, _, err := x.partyKey("leg", parts[0])
		if err != nil {
			return t, nil, err
		}
		tk, _, err := x.partyKey("leg", parts[1])
		if err != nil {
			return t, nil, err
		}
		spec, err := settlement.ParseLeg(parts[2])
		if err != nil {
			return t, nil, fmt.Errorf("--leg %q: %w", v, err)
		}
		t.Legs = append(t.Legs, spec.Leg(fk.Public().Address(), tk.Public().Address()))
		if !slices.ContainsFunc(keys, func(k crypto.PrivateKey) bool { return k.Public().Address() == fk.Public().Address() }) {
			keys = append(keys, fk)
		}
	}
	return t, keys, nil
}

func legFlag(c *cli.Context, name string) (settlement.LegSpec, error) {
	v := c.String(name)
	if v == "" {
		return settlement.LegSpec{}, fmt.Errorf("missing --%s: give CHAIN:ASSET:AMOUNT, e.g. alpha:USD:100", name)
	}
	s, err := settlement.ParseLeg(v)
	if err != nil {
		return s, fmt.Errorf("--%s: %w", name, err)
	}
	return s, nil
}

// xchainRegistry is the builtin registry with the crosschain transforms.
func xchainRegistry() *transform.Registry {
	return app.Registry()
}

// record is a submitted trade as kept in the store.
type record struct {
	Kind      settlement.Kind `json:"kind"`
	XTx       crosschain.XTx  `json:"xtx"`
	Submitted time.Time       `json:"submitted"`
}

func (x *xenv) save(r record) error { return saveRecord(x.store, r) }

// saveRecord records a submitted crosschain transaction in the trade store dir,
// where `plug settle status` and `plug xchain status` find it by ID.
func saveRecord(dir string, r record) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	id := r.XTx.ID()
	return os.WriteFile(filepath.Join(dir, id.String()+".json"), append(b, '\n'), 0o644)
}

func (x *xenv) load(id hash.Hash) (*record, error) {
	p := filepath.Join(x.store, id.String()+".json")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("trade %s is not recorded in %s: run the command with the --testnet or --store of the "+
			"`plug settle` that submitted it, or pass the transaction with --xtx FILE", id.Short(), x.store)
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if r.XTx.ID() != id {
		return nil, fmt.Errorf("%s holds another transaction than %s", p, id.Short())
	}
	return &r, nil
}

// prepareOut is a submitted xchain/prepare.
type prepareOut = settlement.PrepareResult

// settleOut is a trade in --output json.
type settleOut struct {
	*settlement.Status
	Kind     settlement.Kind `json:"kind,omitempty"`
	Prepares []prepareOut    `json:"prepares,omitempty"`
	// Existing: a trade under this reference was already on the chains; it
	// was reported (and its missing prepares sent), not submitted again.
	Existing bool `json:"existing,omitempty"`
}

// tradeAction builds, signs and submits a trade, then waits for it with --wait.
func tradeAction(c *cli.Context, build func(*xenv) (settlement.Trade, []crypto.PrivateKey, error)) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: settle commands take flags only (see `%s --help`)", c.Args().First(), commandPath(c))
	}
	x, err := newXEnv(c)
	if err != nil {
		return err
	}
	trade, keys, err := build(x)
	if err != nil {
		return err
	}
	trade.Ref = c.String("ref")
	if trade.Ref == "" {
		trade.Ref = newRef()
		x.out.Warn("no --ref given: this trade's reference is %s (run again with --ref %s to follow it without submitting it twice)", trade.Ref, trade.Ref)
	}
	if err := x.checkAssets(trade.Legs); err != nil {
		return err
	}
	var opts []settlement.PrepareOption
	if c.Bool("no-coordinator-prepare") {
		opts = append(opts, settlement.LeaveCoordinatorLegs())
	}
	if c.Duration("deadline") <= 0 {
		return errors.New("--deadline must be positive, e.g. 30s")
	}
	xt, err := trade.XTx(c.String("coordinator"), time.Now().Add(c.Duration("deadline")))
	if err != nil {
		return err
	}
	prev, err := x.existingTrade(&xt)
	if err != nil {
		return err
	}
	existing := prev != nil
	var prepares []prepareOut
	if existing {
		xt = prev.XTx
		if prepares, err = x.resume(&xt, keys, opts...); err != nil {
			return err
		}
	} else if xt, prepares, err = x.submitTrade(trade, keys, c.String("coordinator"), c.Duration("deadline"), opts...); err != nil {
		return err
	}
	st, err := x.waitFinal(&xt, c.Bool("wait"), c.Duration("timeout"))
	if err != nil {
		return err
	}
	return x.emitStatus(settleOut{Status: st, Kind: trade.Kind, Prepares: prepares, Existing: existing}, c.Bool("wait"), c.Duration("timeout"))
}

// newRef returns a fresh trade reference.
func newRef() string {
	var b [6]byte
	rand.Read(b[:])
	return "T-" + hex.EncodeToString(b[:])
}

// checkAssets refuses, before anything is signed, a leg whose chain does not
// define its asset.
func (x *xenv) checkAssets(legs []crosschain.Leg) error {
	for i, l := range legs {
		cl := x.clients[l.Chain]
		if cl == nil {
			continue // reported with the chains of the trade
		}
		if err := checkAsset(x.ctx(), cl, l.Asset); err != nil {
			return fmt.Errorf("leg %d: %w", i, err)
		}
	}
	return nil
}

// existingTrade looks up xt's reference for each of its paying parties on its
// chains (the coordinator first) and returns the trade found, when it has
// the same terms as xt (its deadline aside), or nil when the reference is
// unused. A trade with other terms under the reference is an error: the
// chains would refuse or abort the new one.
func (x *xenv) existingTrade(xt *crosschain.XTx) (*settlement.RefTrade, error) {
	if xt.Ref == "" {
		return nil, nil
	}
	order := []string{xt.Coordinator}
	for _, c := range legChains(xt) {
		if c != xt.Coordinator && x.clients[c] != nil {
			order = append(order, c)
		}
	}
	if x.clients[xt.Coordinator] == nil {
		return nil, nil // reported when it is submitted
	}
	for _, p := range xt.Parties() {
		prev, err := settlement.LookupRef(x.ctx(), x.readers(), order, p, xt.Ref, false)
		if errors.Is(err, settlement.ErrRefNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("looking up reference %q: %w", xt.Ref, err)
		}
		if !settlement.SameTerms(&prev.XTx, xt) {
			return nil, fmt.Errorf("reference %q of %s is already used by trade %s with other terms (%s, coordinator %s): "+
				"give this trade another --ref, or follow that one with `plug settle status %s`",
				xt.Ref, p, prev.ID, settlement.DescribeLegs(prev.XTx.Legs), prev.XTx.Coordinator, prev.ID)
		}
		x.out.Warn("trade %s is already on the chains under reference %q: reporting it, not submitting it again", prev.ID.String()[:12], xt.Ref)
		return prev, nil
	}
	return nil, nil
}

// resume sends the prepares a trade found under its reference still lacks —
// an earlier run may have stopped half way — unless its deadline passed (the
// coordinator then aborts it, and a prepare would only be refused).
func (x *xenv) resume(xt *crosschain.XTx, keys []crypto.PrivateKey, opts ...settlement.PrepareOption) ([]prepareOut, error) {
	if err := x.save(record{XTx: *xt, Submitted: time.Now().UTC()}); err != nil {
		return nil, fmt.Errorf("recording the trade: %w", err)
	}
	st, err := settlement.Query(x.ctx(), xt, x.readers(), false)
	if err != nil {
		return nil, err
	}
	var missing []int
	for _, l := range st.Legs {
		if l.Status == settlement.LegPending {
			missing = append(missing, l.Leg)
		}
	}
	if st.Decided || len(missing) == 0 || time.Now().UnixMilli() > xt.Deadline {
		return nil, nil
	}
	signed, err := crosschain.NewSigned(*xt, keys...)
	if err != nil {
		return nil, err
	}
	if err := signed.VerifySigs(); err != nil {
		return nil, fmt.Errorf("%w: every party that pays must be given as a key", err)
	}
	opts = append(opts, settlement.SkipLegs(func(leg int) bool { return !slices.Contains(missing, leg) }))
	return x.prepare(signed, keys, opts...)
}

// submitTrade signs trade with keys (a random Ref when it has none), records it
// in the store and submits xchain/prepare of every leg, warning of prepares
// that failed. The coordinator may commit it until deadline from now.
func (x *xenv) submitTrade(trade settlement.Trade, keys []crypto.PrivateKey, coordinator string, deadline time.Duration, opts ...settlement.PrepareOption) (crosschain.XTx, []prepareOut, error) {
	if trade.Ref == "" {
		trade.Ref = newRef()
	}
	if deadline <= 0 {
		return crosschain.XTx{}, nil, errors.New("--deadline must be positive, e.g. 30s")
	}
	xt, err := trade.XTx(coordinator, time.Now().Add(deadline))
	if err != nil {
		return xt, nil, err
	}
	for _, id := range append([]string{xt.Coordinator}, legChains(&xt)...) {
		if x.clients[id] == nil {
			return xt, nil, fmt.Errorf("chain %q is not one of %v: check the legs and --coordinator, or add --node %s=URL", id, x.chainIDs(), id)
		}
	}
	signed, err := crosschain.NewSigned(xt, keys...)
	if err != nil {
		return xt, nil, err
	}
	if err := signed.VerifySigs(); err != nil {
		return xt, nil, fmt.Errorf("%w: every party that pays must be given as a key", err)
	}
	if err := x.save(record{Kind: trade.Kind, XTx: xt, Submitted: time.Now().UTC()}); err != nil {
		return xt, nil, fmt.Errorf("recording the trade: %w", err)
	}
	prepares, err := x.prepare(signed, keys, opts...)
	if err != nil {
		return xt, nil, err
	}
	for _, p := range prepares {
		if p.Error != "" {
			x.out.Warn("prepare of leg %d on %s: %s", p.Leg, p.Chain, p.Error)
		}
	}
	return xt, prepares, nil
}

func legChains(x *crosschain.XTx) []string {
	var out []string
	for _, l := range x.Legs {
		if !slices.Contains(out, l.Chain) {
			out = append(out, l.Chain)
		}
	}
	return out
}

// prepare submits xchain/prepare of every leg, signed by the leg's payer, and
// waits for each to be committed.
func (x *xenv) prepare(s *crosschain.Signed, keys []crypto.PrivateKey, opts ...settlement.PrepareOption) ([]prepareOut, error) {
	return x.prepareBy(s, func(i int, l crosschain.Leg) (crypto.PrivateKey, error) {
		ki := slices.IndexFunc(keys, func(k crypto.PrivateKey) bool { return k.Public().Address() == l.From })
		if ki < 0 {
			return nil, fmt.Errorf("leg %d is paid by %s, whose key was not given", i, l.From)
		}
		return keys[ki], nil
	}, opts...)
}

// prepareBy is prepare with the submitter of each leg's prepare chosen by keyFor.
func (x *xenv) prepareBy(s *crosschain.Signed, keyFor func(int, crosschain.Leg) (crypto.PrivateKey, error), opts ...settlement.PrepareOption) ([]prepareOut, error) {
	return settlement.Prepare(x.ctx(), xchainRegistry(), s, x.clients, keyFor, settlement.PrepareTimeout, opts...)
}

// waitFinal reads the trade's status, and with wait polls until it is final or
// timeout passes.
func (x *xenv) waitFinal(xt *crosschain.XTx, wait bool, timeout time.Duration) (*settlement.Status, error) {
	if !wait {
		timeout = 0
	}
	var st *settlement.Status
	err := waitBar(x.out, "waiting for the trade to be final", func() error {
		var err error
		st, err = settlement.WaitFinal(x.ctx(), xt, x.readers(), timeout, 250*time.Millisecond)
		return err
	})
	return st, err
}

// emitStatus prints a trade's status; the error says when it aborted or, with
// wait, is not final.
func (x *xenv) emitStatus(o settleOut, wait bool, timeout time.Duration) error {
	st := o.Status
	err := x.out.Emit(o, func(w io.Writer) error {
		pairs := [][2]string{{"id", st.ID}, {"status", string(st.State)}, {"final", strconv.FormatBool(st.Final)},
			{"coordinator", st.Coordinator}, {"deadline", time.UnixMilli(st.Deadline).UTC().Format(time.RFC3339Nano)}}
		if st.Ref != "" {
			pairs = append(pairs, [2]string{"ref", st.Ref})
		}
		if o.Existing {
			pairs = append(pairs, [2]string{"note", "already on the chains under this reference: reported, not submitted again"})
		}
		if st.Reason != "" {
			pairs = append(pairs, [2]string{"reason", st.Reason})
		}
		if err := x.out.Fields(pairs); err != nil {
			return err
		}
		fmt.Fprintln(w)
		var rows [][]string
		for _, l := range st.Legs {
			h := ""
			if l.Height > 0 {
				h = strconv.FormatUint(l.Height, 10)
			}
			v := ""
			if l.Verified {
				v = "yes"
			}
			rows = append(rows, []string{strconv.Itoa(l.Leg), l.Chain, l.Asset, strconv.FormatUint(l.Amount, 10),
				l.From.String()[:8] + "…", l.To.String()[:8] + "…", l.Status, h, v, l.Reason})
		}
		return x.out.Table([]string{"LEG", "CHAIN", "ASSET", "AMOUNT", "FROM", "TO", "STATUS", "HEIGHT", "PROVEN", "REASON"}, rows)
	})
	if err != nil {
		return err
	}
	switch {
	case st.State == settlement.Aborted:
		return reportedError{fmt.Errorf("trade %s aborted: %s", st.ID[:12], st.Reason)}
	case wait && !st.Final:
		return reportedError{fmt.Errorf("trade %s is not final after %s (status %s): relays carry the proofs between chains — "+
			"start one with `plug relay start --config relay.toml` (see `plug relay status`), then follow it with `plug settle status %s`",
			st.ID[:12], timeout, st.State, st.ID)}
	}
	return nil
}

func settleStatusCommand(group string) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show a crosschain transaction's state on each of its chains",
		UsageText: "plug " + group + " status ID [--testnet DIR | --node CHAIN=URL ...] [--xtx FILE] [--prove] [--wait]\n\n" +
			"plug " + group + " status 3f2a…91c0 --testnet ./tn\n" +
			"plug " + group + " status 3f2a…91c0 --testnet ./tn --prove --output json",
		Description: "Reads xchain/leg/ID/N on each leg's chain and xchain/decision/ID on the coordinator. The trade is\n" +
			"found in the store `plug settle` records it in (or given with --xtx, a JSON file of the transaction).\n" +
			"Legs are pending, prepared, refused, committed or aborted; the trade pending, prepared, committed or\n" +
			"aborted, and final once every leg has finished. --prove verifies every read against a certified header.",
		Flags: xchainFlags(
			&cli.StringFlag{Name: "xtx", Usage: "JSON file of the crosschain transaction (an XTx, or a record of the store)"},
			&cli.BoolFlag{Name: "prove", Usage: "verify each record (or its absence) with a Merkle proof against a certified header"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the transaction is final"},
			&cli.DurationFlag{Name: "timeout", Value: 90 * time.Second, Usage: "how long --wait waits"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("give the transaction id: `plug %s status ID` (printed by `plug settle dvp`)", group)
			}
			id, err := settlement.ParseID(c.Args().First())
			if err != nil {
				return err
			}
			x, err := newXEnv(c)
			if err != nil {
				return err
			}
			var rec *record
			if f := c.String("xtx"); f != "" {
				rec, err = readXTxFile(f, id)
			} else {
				rec, err = x.load(id)
			}
			if err != nil {
				return err
			}
			var st *settlement.Status
			if c.Bool("prove") {
				st, err = settlement.Query(x.ctx(), &rec.XTx, x.readers(), true)
			} else {
				st, err = x.waitFinal(&rec.XTx, c.Bool("wait"), c.Duration("timeout"))
			}
			if err != nil {
				return err
			}
			return x.emitStatus(settleOut{Status: st, Kind: rec.Kind}, c.Bool("wait"), c.Duration("timeout"))
		},
	}
}

func readXTxFile(path string, id hash.Hash) (*record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || len(r.XTx.Legs) == 0 {
		r = record{}
		if err := json.Unmarshal(b, &r.XTx); err != nil {
			return nil, fmt.Errorf("--xtx %s: %w", path, err)
		}
	}
	if got := r.XTx.ID(); got != id {
		return nil, fmt.Errorf("--xtx %s holds transaction %s, not %s", path, got.Short(), id.Short())
	}
	return &r, nil
}

func settleBatchCommand() *cli.Command {
	return &cli.Command{
		Name:  "batch",
		Usage: "settle a batch of transfers as one transaction of net transfers, all or nothing",
		UsageText: "plug settle batch (--trade FROM:TO:CHAIN:ASSET:AMOUNT ... | --file TRADES.json) [flags]\n\n" +
			"plug settle batch --testnet ./tn --trade alice:bob:alpha:USD:100 --trade bob:carol:alpha:USD:100 --trade carol:alice:alpha:USD:30 --wait\n" +
			"plug settle batch --testnet ./tn --file trades.json --coordinator alpha --wait --output json",
		Description: "Each --trade is a one-leg trade; --file holds a JSON list of trades, each {\"legs\": [{\"from\": KEY,\n" +
			"\"to\": KEY, \"chain\": C, \"asset\": A, \"amount\": N}, ...]}. Per chain and asset, every party's net\n" +
			"position is computed and settled by as few transfers as possible, in one crosschain transaction\n" +
			"(docs/settlement.md, \"Batch netting\"). Only parties with a net debit pay, so only they sign.",
		Flags: tradeFlags(
			&cli.StringSliceFlag{Name: "trade", Usage: "a transfer FROM:TO:CHAIN:ASSET:AMOUNT (repeat)"},
			&cli.StringFlag{Name: "file", Usage: "JSON file of trades (see above)"},
		),
		Action: func(c *cli.Context) error {
			return tradeAction(c, func(x *xenv) (settlement.Trade, []crypto.PrivateKey, error) {
				trades, err := batchTrades(x, c.StringSlice("trade"), c.String("file"))
				if err != nil {
					return settlement.Trade{}, nil, err
				}
				b := settlement.Batch(trades, "")
				if len(b.Legs) == 0 {
					return b, nil, fmt.Errorf("the %d trades net to zero on every chain and asset: nothing to settle", len(trades))
				}
				var keys []crypto.PrivateKey
				for _, l := range b.Legs {
					if slices.ContainsFunc(keys, func(k crypto.PrivateKey) bool { return k.Public().Address() == l.From }) {
						continue
					}
					k, _, err := x.partyKey("trade", l.From.String())
					if err != nil {
						return b, nil, err
					}
					keys = append(keys, k)
				}
				return b, keys, nil
			})
		},
	}
}

// batchTrades reads the trades of a batch from --trade and --file.
func batchTrades(x *xenv, flags []string, file string) ([]settlement.Trade, error) {
	var trades []settlement.Trade
	for _, v := range flags {
		parts := strings.SplitN(v, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("--trade %q: want FROM:TO:CHAIN:ASSET:AMOUNT, e.g. alice:bob:alpha:USD:10", v)
		}
		spec, err := settlement.ParseLeg(parts[2])
		if err != nil {
			return nil, fmt.Errorf("--trade %q: %w", v, err)
		}
		from, _, err := x.account("trade", parts[0])
		if err != nil {
			return nil, err
		}
		to, _, err := x.account("trade", parts[1])
		if err != nil {
			return nil, err
		}
		trades = append(trades, settlement.Trade{Legs: []crosschain.Leg{spec.Leg(from, to)}})
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var in []struct {
			Legs []struct {
				From, To, Chain, Asset string
				Amount                 uint64
			} `json:"legs"`
		}
		if err := json.Unmarshal(b, &in); err != nil {
			return nil, fmt.Errorf("--file %s: %w (want a JSON list of {\"legs\": [...]})", file, err)
		}
		for i, t := range in {
			var tr settlement.Trade
			for j, l := range t.Legs {
				where := fmt.Sprintf("%s: trade %d leg %d", file, i, j)
				spec, err := settlement.ParseLeg(l.Chain + ":" + l.Asset + ":" + strconv.FormatUint(l.Amount, 10))
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				from, _, err := x.account(where+" from", l.From)
				if err != nil {
					return nil, err
				}
				to, _, err := x.account(where+" to", l.To)
				if err != nil {
					return nil, err
				}
				tr.Legs = append(tr.Legs, spec.Leg(from, to))
			}
			if err := tr.Check(); err != nil {
				return nil, fmt.Errorf("%s: trade %d: %w", file, i, err)
			}
			trades = append(trades, tr)
		}
	}
	if len(trades) == 0 {
		return nil, errors.New("no trades: give --trade FROM:TO:CHAIN:ASSET:AMOUNT (repeat) or --file TRADES.json")
	}
	return trades, nil
}

func settleInstructCommand() *cli.Command {
	return &cli.Command{
		Name:  "instruct",
		Usage: "sign one party's own instruction for a trade, to be matched with the counterparty's",
		UsageText: "plug settle instruct --as KEY (--seller A --buyer B --delivery C:A:N --payment C:A:N | --leg FROM:TO:C:A:N ...) " +
			"--deadline-at TIME --ref REF [--coordinator CHAIN] [--out FILE]\n\n" +
			"plug settle instruct --testnet ./tn --as alice --seller alice --buyer bob --delivery alpha:EUR:100 --payment beta:USD:110 \\\n" +
			"    --deadline-at 2026-11-24T15:00:00Z --ref T-42 --out alice.json\n" +
			"plug settle instruct --keyring-dir ~/bank-b/keys --as bob --seller 3f2a…91c0 --buyer bob --delivery alpha:EUR:100 \\\n" +
			"    --payment beta:USD:110 --deadline-at 2026-11-24T15:00:00Z --ref T-42 --out bob.json",
		Description: "Each party describes the trade as it sees it and signs it with its own key; `plug settle match`\n" +
			"pairs two instructions that agree (same legs in any order, ref, coordinator and deadline) and\n" +
			"submits the trade. The counterparty is a keyring name or an address: its key is not needed.",
		Flags: xchainFlags(
			&cli.StringFlag{Name: "as", Usage: "the party giving the instruction: a keyring key"},
			&cli.StringFlag{Name: "seller", Usage: "DvP seller: key name or address"},
			&cli.StringFlag{Name: "buyer", Usage: "DvP buyer: key name or address"},
			&cli.StringFlag{Name: "delivery", Usage: "DvP delivery: CHAIN:ASSET:AMOUNT"},
			&cli.StringFlag{Name: "payment", Usage: "DvP payment: CHAIN:ASSET:AMOUNT"},
			&cli.StringSliceFlag{Name: "leg", Usage: "a leg FROM:TO:CHAIN:ASSET:AMOUNT (repeat; instead of the DvP flags)"},
			&cli.StringFlag{Name: "coordinator", Usage: "chain that decides (default: the first leg's chain in canonical order)"},
			&cli.StringFlag{Name: "deadline-at", Usage: "when the trade must have committed, RFC 3339 (both parties give the same)"},
			&cli.StringFlag{Name: "ref", Usage: "trade reference both parties give, e.g. T-42"},
			&cli.StringFlag{Name: "out", Usage: "write the signed instruction here (default: standard output)"},
		),
		Action: func(c *cli.Context) error {
			x, err := newXEnvFor(c, false)
			if err != nil {
				return err
			}
			key, _, err := x.partyKey("as", c.String("as"))
			if err != nil {
				return err
			}
			ref, err := needString(c, "ref", "the trade reference both parties use, e.g. T-42")
			if err != nil {
				return err
			}
			at, err := needString(c, "deadline-at", "the deadline both parties use, e.g. 2026-11-24T15:00:00Z")
			if err != nil {
				return err
			}
			deadline, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				return fmt.Errorf("--deadline-at %q: want RFC 3339, e.g. 2026-11-24T15:00:00Z", at)
			}
			var trade settlement.Trade
			if legs := c.StringSlice("leg"); len(legs) > 0 {
				trade.Kind = settlement.OtherKind
				for _, v := range legs {
					parts := strings.SplitN(v, ":", 3)
					if len(parts) != 3 {
						return fmt.Errorf("--leg %q: want FROM:TO:CHAIN:ASSET:AMOUNT", v)
					}
					from, _, err := x.account("leg", parts[0])
					if err != nil {
						return err
					}
					to, _, err := x.account("leg", parts[1])
					if err != nil {
						return err
					}
					spec, err := settlement.ParseLeg(parts[2])
					if err != nil {
						return fmt.Errorf("--leg %q: %w", v, err)
					}
					trade.Legs = append(trade.Legs, spec.Leg(from, to))
				}
			} else {
				seller, _, err := x.account("seller", c.String("seller"))
				if err != nil {
					return err
				}
				buyer, _, err := x.account("buyer", c.String("buyer"))
				if err != nil {
					return err
				}
				d, err := legFlag(c, "delivery")
				if err != nil {
					return err
				}
				p, err := legFlag(c, "payment")
				if err != nil {
					return err
				}
				trade = settlement.DvP(seller, buyer, d, p)
			}
			trade.Ref = ref
			in := settlement.Instruction{Party: key.Public().Address(), Trade: trade, Coordinator: c.String("coordinator"), Deadline: deadline.UTC()}
			si, err := settlement.Sign(in, key)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(si, "", "  ")
			if err != nil {
				return err
			}
			b = append(b, '\n')
			if out := c.String("out"); out != "" {
				if err := os.WriteFile(out, b, 0o644); err != nil {
					return err
				}
				xt, _ := in.XTx()
				id := xt.ID()
				return x.out.Emit(map[string]string{"file": out, "party": in.Party.String(), "id": id.String()}, func(w io.Writer) error {
					return x.out.Fields([][2]string{{"instruction", out}, {"party", in.Party.String()}, {"id", id.String()}})
				})
			}
			_, err = c.App.Writer.Write(b)
			return err
		},
	}
}

func settleMatchCommand() *cli.Command {
	return &cli.Command{
		Name:  "match",
		Usage: "match two parties' signed instructions and submit the trade",
		UsageText: "plug settle match A.json B.json --from KEY [--testnet DIR | --node CHAIN=URL ...] [--wait]\n\n" +
			"plug settle match alice.json bob.json --testnet ./tn --from alice --wait --output json",
		Description: "The instructions (from `plug settle instruct`) must describe the same trade; their signatures\n" +
			"become the trade's. --from submits the prepares: any account allowed to call xchain/prepare\n" +
			"(e.g. one of the parties, or an operator), since the parties' signatures are in the trade.",
		Flags: xchainFlags(
			&cli.StringFlag{Name: "from", Usage: "account that signs and submits the prepare transactions: a keyring key"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the trade is final and print it"},
			&cli.DurationFlag{Name: "timeout", Value: 90 * time.Second, Usage: "how long --wait waits"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return errors.New("give two instruction files: `plug settle match A.json B.json` (see `plug settle instruct`)")
			}
			var ins [2]settlement.SignedInstruction
			for i, f := range c.Args().Slice() {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &ins[i]); err != nil {
					return fmt.Errorf("%s: %w (want a file written by `plug settle instruct`)", f, err)
				}
			}
			x, err := newXEnv(c)
			if err != nil {
				return err
			}
			s, err := settlement.MatchSigned(ins[0], ins[1])
			if err != nil {
				return err
			}
			for _, id := range append([]string{s.XTx.Coordinator}, legChains(&s.XTx)...) {
				if x.clients[id] == nil {
					return fmt.Errorf("chain %q is not one of %v: add --node %s=URL", id, x.chainIDs(), id)
				}
			}
			if c.String("from") == "" {
				return errors.New("missing --from: name the keyring key that submits the prepares (e.g. one of the parties)")
			}
			sub, _, err := x.partyKey("from", c.String("from"))
			if err != nil {
				return err
			}
			kind := ins[0].Trade.Kind
			if err := x.checkAssets(s.XTx.Legs); err != nil {
				return err
			}
			prev, err := x.existingTrade(&s.XTx)
			if err != nil {
				return err
			}
			var opts []settlement.PrepareOption
			switch {
			case prev != nil && prev.ID != s.XTx.ID():
				// The same trade under another deadline: report that one.
				s, opts = &crosschain.Signed{XTx: prev.XTx}, append(opts, settlement.SkipLegs(func(int) bool { return true }))
			case prev != nil:
				st, err := settlement.Query(x.ctx(), &s.XTx, x.readers(), false)
				if err != nil {
					return err
				}
				opts = append(opts, settlement.SkipLegs(func(leg int) bool { return st.Decided || st.Legs[leg].Status != settlement.LegPending }))
			}
			if err := x.save(record{Kind: kind, XTx: s.XTx, Submitted: time.Now().UTC()}); err != nil {
				return fmt.Errorf("recording the trade: %w", err)
			}
			prepares, err := x.prepareBy(s, func(int, crosschain.Leg) (crypto.PrivateKey, error) { return sub, nil }, opts...)
			if err != nil {
				return err
			}
			for _, p := range prepares {
				if p.Error != "" {
					x.out.Warn("prepare of leg %d on %s: %s", p.Leg, p.Chain, p.Error)
				}
			}
			st, err := x.waitFinal(&s.XTx, c.Bool("wait"), c.Duration("timeout"))
			if err != nil {
				return err
			}
			return x.emitStatus(settleOut{Status: st, Kind: kind, Prepares: prepares, Existing: prev != nil}, c.Bool("wait"), c.Duration("timeout"))
		},
	}
}
