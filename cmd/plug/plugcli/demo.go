package plugcli

import (
	"context"
	"errors"
	"fmt"

	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
	"github.com/plugchain/plug/testnet"
)

// demoCommand returns `plug demo`: a local two-chain testnet, three trades and
// their outcome, told as a story.
func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "start two local chains and a relay, settle a DvP, a PvP and a trade that aborts, then stop",
		UsageText: "plug demo [--dir DIR] [--keep] [--output json]\n\n" +
			"Examples:\n" +
			"  plug demo                                   # about 15 s; everything happens in a temporary directory\n" +
			"  plug demo --dir /tmp/plug-demo --keep       # keep the (stopped) testnet: its logs, keys and databases\n" +
			"  plug demo --output json | jq '.trades[] | {name, status, reason}'",
		Description: "Starts a testnet of two chains (alpha and beta, 4 validator processes each) and a relay on\n" +
			"127.0.0.1, exactly as `plug testnet up --chains 2` does, and waits until both chains commit blocks and\n" +
			"the relay's on-chain light clients exist. Then, through the code of `plug settle` and proven reads as\n" +
			"`plug query balance --prove` makes them:\n" +
			"  1. a DvP: alice delivers EUR on alpha to bob, who pays USD on beta; it commits;\n" +
			"  2. a PvP: alice pays USD on alpha, bob pays EUR on beta, coordinated by beta; it commits;\n" +
			"  3. a DvP bob cannot pay: his leg is refused, the trade aborts, alice's escrowed EUR is refunded.\n" +
			"It prints each leg's state and reason, the balances before and after, checks that every asset is\n" +
			"conserved on every chain, and stops the testnet (also on Ctrl-C or an error). The nodes and the relay\n" +
			"log to their files in the testnet directory. The exit code is 1 if any step did not turn out as told.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "directory for the testnet: new or empty (default: a fresh temporary directory)"},
			&cli.BoolFlag{Name: "keep", Usage: "leave the stopped testnet in the directory instead of deleting it ('plug testnet up --dir DIR' starts it again)"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "how long to wait for the chains to start, and for each trade to be final"},
		},
		Action: demoAction,
	}
}

// demoAccounts are the funded testnet accounts whose balances the demo reads;
// the story moves alice's and bob's.
var demoAccounts = []string{"alice", "bob", "carol"}

// demo runs the story; its fields are what the steps share.
type demo struct {
	c     *cli.Context
	o     *output
	story *demoStory
	dir   string
	m     *testnet.Manifest
	x     *xenv
	names map[crypto.Address]string
	addrs map[string]crypto.Address
	wait  time.Duration
}

func demoAction(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unexpected argument %q: plug demo takes flags only (see `plug demo --help`)", c.Args().First())
	}
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	start := time.Now()
	dir, restore, err := demoDir(c.String("dir"))
	if err != nil {
		return err
	}
	// Signals are caught until the testnet is stopped: a second Ctrl-C must
	// not leave the nodes running.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	c.Context = ctx
	d := &demo{c: c, o: o, dir: dir, wait: c.Duration("timeout"), story: &demoStory{Dir: dir, Relays: []string{}}}
	d.say("PLUG demo: two chains of 4 validators and a relay on 127.0.0.1, in %s\n", dir)
	d.say("(node and relay logs: %s/CHAIN/NODE/%s, %s/RELAY/%s; amounts are in the asset's smallest unit)\n",
		dir, testnet.LogFile, dir, testnet.RelayLogFile)

	runErr := d.run()
	interrupted := ctx.Err() != nil && runErr != nil
	if interrupted {
		runErr = errors.New("interrupted: the demo stopped its testnet; run `plug demo` again to see the whole story")
	}

	// Stop the testnet, whatever happened.
	t0 := time.Now()
	d.say("\nstopping the testnet... ")
	_, downErr := testnet.DownReport(dir)
	if errors.Is(downErr, testnet.ErrNoTestnet) {
		downErr = nil
	}
	if downErr != nil {
		downErr = fmt.Errorf("stopping the testnet in %s: %w: stop what is left with `plug testnet down --dir %s`", dir, downErr, dir)
	}
	d.say("done (%s)\n", seconds(time.Since(t0)))
	keep := c.Bool("keep") || (runErr != nil && !interrupted) || downErr != nil
	if keep {
		d.story.Kept = true
		if runErr != nil || downErr != nil {
			d.say("the testnet is kept in %s for its logs; delete it when done\n", dir)
		} else {
			d.say("the testnet is kept in %s: `plug testnet up --dir %s` starts it again\n", dir, dir)
		}
	} else if err := restore(); err != nil {
		d.o.Warn("removing %s: %v", dir, err)
	}
	d.story.DurationMS = time.Since(start).Milliseconds()
	err = errors.Join(runErr, downErr)
	if err == nil && !d.story.OK {
		err = errors.New("the demo did not turn out as told (see above): look at the node logs with --keep")
	}
	if err != nil {
		d.story.OK = false
		d.story.Error = err.Error()
	}
	if o.JSON() {
		if jerr := writeJSON(o.w, d.story); jerr != nil {
			return errors.Join(err, jerr)
		}
		if err != nil {
			return reportedError{err}
		}
		return nil
	}
	if err == nil {
		d.say("the demo took %s. Next: docs/tutorial.md (write a transform, run it, move an asset, query it with a proof)\n",
			seconds(time.Since(start)))
	}
	return err
}

// demoDir returns the demo's directory, and how to remove what the demo put
// there: dir when given (it must be new or empty), else a fresh temporary one.
func demoDir(dir string) (string, func() error, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "plug-demo-")
		if err != nil {
			return "", nil, fmt.Errorf("creating a temporary directory: %w: pass --dir DIR", err)
		}
		return d, func() error { return os.RemoveAll(d) }, nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dir, func() error { return os.RemoveAll(dir) }, nil
	case err != nil:
		return "", nil, fmt.Errorf("--dir %s: %w", dir, err)
	case len(ents) > 0:
		return "", nil, fmt.Errorf("--dir %s is not empty: give a new or empty directory (an existing testnet is started with `plug testnet up --dir %s`)", dir, dir)
	}
	// It existed and was empty: empty it again.
	return dir, func() error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var errs []error
		for _, e := range ents {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
		return errors.Join(errs...)
	}, nil
}

// say prints to stdout in text mode.
func (d *demo) say(format string, args ...any) {
	if !d.o.JSON() {
		fmt.Fprintf(d.o.w, format, args...)
	}
}

// step runs one step of the story, recording and printing its duration.
func (d *demo) step(name, title string, fn func() error) error {
	d.say("\n==> %d. %s\n", len(d.story.Steps)+1, title)
	t0 := time.Now()
	err := fn()
	st := demoStep{Name: name, Title: title, DurationMS: time.Since(t0).Milliseconds()}
	if err != nil {
		st.Error = err.Error()
	}
	d.story.Steps = append(d.story.Steps, st)
	if err == nil {
		d.say("    (%s)\n", seconds(time.Since(t0)))
	}
	return err
}

// run tells the story up to the final balances; the caller stops the testnet.
func (d *demo) run() error {
	if err := d.step("testnet", "start the testnet: alpha and beta, 4 validators each, and relay-1", d.up); err != nil {
		return err
	}
	var before []demoBalance
	if err := d.step("balances_before", "balances before (each read with a Merkle proof, verified)", func() error {
		var err error
		if before, d.story.BalancesBefore, err = d.balances(); err != nil {
			return err
		}
		return d.balanceTable(d.story.BalancesBefore, nil)
	}); err != nil {
		return err
	}

	dvp := settlement.DvP(d.addrs["alice"], d.addrs["bob"],
		settlement.LegSpec{Chain: "alpha", Asset: "EUR", Amount: 100}, settlement.LegSpec{Chain: "beta", Asset: "USD", Amount: 110})
	if err := d.trade("dvp", "DvP: alice delivers 100 EUR on alpha to bob, bob pays 110 USD on beta (alpha coordinates)",
		dvp, "alpha", settlement.Committed, nil); err != nil {
		return err
	}
	pvp := settlement.PvP(d.addrs["alice"], d.addrs["bob"],
		settlement.LegSpec{Chain: "alpha", Asset: "USD", Amount: 50}, settlement.LegSpec{Chain: "beta", Asset: "EUR", Amount: 45})
	if err := d.trade("pvp", "PvP: alice pays 50 USD on alpha to bob, bob pays 45 EUR on beta to alice (beta coordinates)",
		pvp, "beta", settlement.Committed, nil); err != nil {
		return err
	}
	// Bob holds about a million cents of USD on beta: he cannot pay 5 million.
	const unpaid = 5_000_000
	failing := settlement.DvP(d.addrs["alice"], d.addrs["bob"],
		settlement.LegSpec{Chain: "alpha", Asset: "EUR", Amount: 100}, settlement.LegSpec{Chain: "beta", Asset: "USD", Amount: unpaid})
	refund := &demoRefund{Chain: "alpha", Account: "alice", Asset: "EUR", Amount: 100}
	if err := d.trade("failing", fmt.Sprintf("a DvP bob cannot pay: 100 EUR on alpha against %d USD on beta", unpaid),
		failing, "alpha", settlement.Aborted, refund); err != nil {
		return err
	}
	d.story.Refund = refund

	if err := d.step("balances_after", "balances after", func() error {
		after, shown, err := d.balances()
		if err != nil {
			return err
		}
		d.story.BalancesAfter = shown
		d.compare(before, after)
		return d.balanceTable(shown, d.story.BalancesBefore)
	}); err != nil {
		return err
	}
	d.story.OK = d.story.Conserved && refund.Refunded
	for _, t := range d.story.Trades {
		d.story.OK = d.story.OK && t.OK
	}
	return nil
}

// up starts the testnet, waits for blocks and creates the light clients, the
// way `plug testnet up` does.
func (d *demo) up() error {
	ctx := d.c.Context
	m, err := testnet.Up(ctx, testnet.DefaultTopology(2, 4), d.dir, testnet.Options{})
	if err != nil {
		return fmt.Errorf("starting the testnet in %s: %w", d.dir, err)
	}
	d.m = m
	for _, ch := range m.Chains {
		d.story.Chains = append(d.story.Chains, demoChain{ID: ch.ChainID, Validators: len(ch.Nodes)})
	}
	for _, r := range m.Relays {
		d.story.Relays = append(d.story.Relays, r.Name)
	}
	wctx, cancel := context.WithTimeout(ctx, d.wait)
	defer cancel()
	t0 := time.Now()
	if err := testnet.Wait(wctx, m, testnet.ReadyHeight, testnet.Options{}); err != nil {
		return fmt.Errorf("the chains did not commit blocks: %w", err)
	}
	d.say("    %d node processes started; both chains commit blocks (%s)\n", len(m.Chains[0].Nodes)+len(m.Chains[1].Nodes), seconds(time.Since(t0)))
	t0 = time.Now()
	n, err := testnet.Connect(wctx, m)
	if err != nil {
		return fmt.Errorf("creating the relay's light clients: %w", err)
	}
	d.story.LightClients = n
	d.say("    %d on-chain light clients created (alpha's on beta, beta's on alpha) for %s (%s)\n", n, strings.Join(d.story.Relays, ", "), seconds(time.Since(t0)))

	d.x = &xenv{env: &env{c: d.c, out: d.o}, clients: map[string]*client.Client{}}
	if err := d.x.useTestnet(d.dir, 10*time.Second); err != nil {
		return err
	}
	kr, err := d.x.keyring()
	if err != nil {
		return fmt.Errorf("opening the testnet keyring: %w", err)
	}
	d.names, d.addrs = map[crypto.Address]string{}, map[string]crypto.Address{}
	for _, name := range demoAccounts {
		info, err := kr.Info(name)
		if err != nil {
			return fmt.Errorf("testnet keyring: %w", err)
		}
		d.names[info.Address], d.addrs[name] = name, info.Address
	}
	return nil
}

// trade settles t through the code of `plug settle` (sign, record, prepare
// every leg, wait until final) and prints its legs. With refund, it also
// follows the seller's balance of the first leg while the escrow is held.
func (d *demo) trade(name, title string, t settlement.Trade, coordinator string, expect settlement.State, refund *demoRefund) error {
	return d.step(name, title, func() error {
		ctx := d.c.Context
		keys := make([]crypto.PrivateKey, 0, 2)
		for _, p := range []string{"alice", "bob"} {
			k, _, err := d.x.partyKey("party", p)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		t.Ref = "demo-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if refund != nil {
			b, _, err := d.x.clients[refund.Chain].ProvenBalance(ctx, refund.Asset, d.addrs[refund.Account], 0, true)
			if err != nil {
				return fmt.Errorf("reading %s's %s on %s: %w", refund.Account, refund.Asset, refund.Chain, err)
			}
			refund.Before = b
		}
		t0 := time.Now()
		xt, prepares, err := d.x.submitTrade(t, keys, coordinator, 30*time.Second)
		if err != nil {
			return fmt.Errorf("submitting the %s: %w", name, err)
		}
		id := xt.ID()
		d.say("    trade %s: both parties signed; xchain/prepare committed on %s (%s)\n",
			id.String()[:12], strings.Join(legChains(&xt), " and "), seconds(time.Since(t0)))
		if refund != nil {
			if err := d.lock(&xt, refund); err != nil {
				return err
			}
		}
		st, err := d.x.waitFinal(&xt, true, d.wait)
		if err != nil {
			return fmt.Errorf("waiting for the %s %s: %w", name, id.Short(), err)
		}
		took := time.Since(t0)
		tr := demoTrade{Name: name, Kind: t.Kind, Story: title, Expect: expect, ID: st.ID, Status: st.State, Final: st.Final,
			Coordinator: st.Coordinator, DecisionHeight: st.DecisionHeight, Reason: st.Reason, Prepares: prepares,
			DurationMS: took.Milliseconds()}
		if tr.Prepares == nil {
			tr.Prepares = []prepareOut{}
		}
		for _, l := range st.Legs {
			tr.Legs = append(tr.Legs, demoLeg{LegStatus: l, FromName: d.name(l.From), ToName: d.name(l.To)})
		}
		tr.OK = st.Final && st.State == expect
		for _, l := range st.Legs {
			tr.OK = tr.OK && l.Status == string(expect)
		}
		d.story.Trades = append(d.story.Trades, tr)
		d.printTrade(&tr, took)
		if refund != nil {
			after, _, err := d.x.clients[refund.Chain].ProvenBalance(ctx, refund.Asset, d.addrs[refund.Account], 0, true)
			if err != nil {
				return fmt.Errorf("reading %s's %s on %s: %w", refund.Account, refund.Asset, refund.Chain, err)
			}
			refund.After = after
			refund.Refunded = st.Final && st.State == settlement.Aborted && after == refund.Before
			if refund.Refunded {
				d.say("    refunded: %s's %s on %s is %d again, as before the trade\n", refund.Account, refund.Asset, refund.Chain, after)
			} else {
				d.say("    NOT refunded: %s's %s on %s is %d, was %d before the trade\n", refund.Account, refund.Asset, refund.Chain, after, refund.Before)
			}
		}
		if !tr.OK {
			d.say("    UNEXPECTED: the trade should have ended %s on every leg\n", expect)
		}
		return nil
	})
}

// lock reads, right after the prepares, whether the seller's leg is escrowed.
func (d *demo) lock(xt *crosschain.XTx, r *demoRefund) error {
	ctx := d.c.Context
	cl := d.x.clients[r.Chain]
	b, res, err := cl.ProvenBalance(ctx, r.Asset, d.addrs[r.Account], 0, true)
	if err != nil {
		return fmt.Errorf("reading %s's %s on %s: %w", r.Account, r.Asset, r.Chain, err)
	}
	r.Locked = b
	esc, err := cl.State(ctx, res.Height, crosschain.EscrowKey(xt.ID(), 0), true)
	if err != nil {
		return fmt.Errorf("reading the escrow on %s: %w", r.Chain, err)
	}
	r.LockSeen = esc.Found
	if r.LockSeen {
		d.say("    %s's leg is prepared: %d %s locked in escrow on %s, her balance there is %d (proven at height %d)\n",
			r.Account, r.Amount, r.Asset, r.Chain, b, res.Height)
	} else {
		d.say("    %s's %s on %s: %d (the escrow was already released when read)\n", r.Account, r.Asset, r.Chain, b)
	}
	return nil
}
