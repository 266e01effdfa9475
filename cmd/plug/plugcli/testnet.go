package plugcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/plugchain/plug/testnet"
)

// testnetCommand returns `plug testnet`: local multi-chain testnets as
// processes on 127.0.0.1.
func testnetCommand() *cli.Command {
	dirFlag := func() cli.Flag {
		return &cli.StringFlag{
			Name:  "dir",
			Usage: "the testnet directory (default: HOME/testnet, HOME being --home)",
		}
	}
	return &cli.Command{
		Name:  "testnet",
		Usage: "run local multi-chain testnets: up, status, down, kill, restart, add-node",
		Description: "A testnet is one or more chains of validator (and full) nodes, each a process on 127.0.0.1\n" +
			"with its own home under the testnet directory. The directory also holds an UNENCRYPTED keyring\n" +
			"(DIR/keys) with `admin` (admin and issuer of USD and EUR on every chain), the funded accounts\n" +
			"`alice`, `bob` and `carol`, and one key per node. Client commands take --testnet DIR (and\n" +
			"--chain ID when there are several chains) instead of endpoints and a keyring. See docs/testnet.md.",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "create and start a testnet (or start a stopped one again)",
				UsageText: "plug testnet up --dir DIR [--chains N --validators N | --topology FILE] [--detach]\n\n" +
					"Examples:\n" +
					"  plug testnet up --dir /tmp/tn --detach                     # 1 chain (alpha) of 4 validators, in the background\n" +
					"  plug testnet up --dir /tmp/tn --chains 2 --validators 4    # alpha, beta and relay-1; Ctrl-C stops them\n" +
					"  plug testnet up --dir /tmp/tn --topology net.toml --detach\n" +
					"  plug testnet up --dir /tmp/sh --shards 4 --validators 4 --detach   # a sharded network: DIR/network.toml\n" +
					"  plug testnet up --dir /tmp/tn --reset --detach             # throw the old one away first",
				Flags: []cli.Flag{
					dirFlag(),
					&cli.StringFlag{Name: "topology", Usage: "topology file (TOML, or JSON when it ends in .json); see docs/testnet.md"},
					&cli.IntFlag{Name: "chains", Value: 1, Usage: "number of chains, without --topology"},
					&cli.IntFlag{Name: "shards", Usage: "instead of --chains: this many shard chains (shard-0, ...) of one logical network, with DIR/network.toml for --network"},
					&cli.IntFlag{Name: "validators", Value: 4, Usage: "validators per chain, without --topology"},
					&cli.IntFlag{Name: "full-nodes", Usage: "full nodes per chain, without --topology"},
					&cli.IntFlag{Name: "relays", Usage: "relays connecting all the chains, without --topology (default: 1 when there are 2 chains or more, else 0)"},
					&cli.IntFlag{Name: "base-port", Usage: "use ports from here up (HTTP and P2P alternate, then one per relay) instead of free ones"},
					&cli.BoolFlag{Name: "detach", Usage: "return once every chain commits blocks, leaving the nodes running"},
					&cli.BoolFlag{Name: "reset", Usage: "stop and delete the testnet already in --dir, then create a new one"},
					&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "how long to wait for every chain to commit blocks"},
				},
				Action: testnetUp,
			},
			{
				Name:  "status",
				Usage: "show every node's height, state root and process",
				UsageText: "plug testnet status --dir DIR [--output json]\n\n" +
					"Examples:\n" +
					"  plug testnet status --dir /tmp/tn\n" +
					"  plug testnet status --dir /tmp/tn --output json | jq '.chains[].nodes[] | {name, height, state_root}'",
				Flags:  []cli.Flag{dirFlag()},
				Action: testnetStatus,
			},
			{
				Name:  "down",
				Usage: "stop every node (SIGTERM, SIGKILL after 10 s); the homes stay, 'up' starts them again",
				UsageText: "plug testnet down --dir DIR\n\n" +
					"Examples:\n" +
					"  plug testnet down --dir /tmp/tn\n" +
					"  plug testnet down --dir /tmp/tn && rm -rf /tmp/tn   # gone for good",
				Flags:  []cli.Flag{dirFlag()},
				Action: testnetDown,
			},
			{
				Name:      "kill",
				Usage:     "crash one node or relay with SIGKILL (fault injection)",
				ArgsUsage: "NAME",
				UsageText: "plug testnet kill --dir DIR NAME\n\n" +
					"Examples:\n" +
					"  plug testnet kill --dir /tmp/tn alpha-val-4\n" +
					"  plug testnet kill --dir /tmp/tn relay-1         # trades wait until it is back\n" +
					"  plug testnet restart --dir /tmp/tn alpha-val-4   # bring it back; it catches up",
				Flags:  []cli.Flag{dirFlag()},
				Action: testnetKill,
			},
			{
				Name:      "restart",
				Usage:     "start a stopped node or relay again from its home (a node catches up, a relay resumes from its db)",
				ArgsUsage: "NAME",
				UsageText: "plug testnet restart --dir DIR NAME\n\n" +
					"Examples:\n" +
					"  plug testnet restart --dir /tmp/tn alpha-val-4\n" +
					"  plug testnet restart --dir /tmp/tn alpha-val-4 --wait   # return once it has caught up",
				Flags: []cli.Flag{
					dirFlag(),
					&cli.BoolFlag{Name: "wait", Usage: "return once the node has caught up with its chain"},
					&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "how long --wait waits"},
				},
				Action: testnetRestart,
			},
			{
				Name:      "add-node",
				Usage:     "add a node to a chain of the running testnet; it joins once power is moved to its key",
				ArgsUsage: "[NAME]",
				UsageText: "plug testnet add-node --dir DIR [--chain ID] [NAME]\n\n" +
					"Examples:\n" +
					"  plug testnet add-node --dir /tmp/tn alpha-new-1\n" +
					"  # move alpha-val-4 to the new node, without restarting anything:\n" +
					"  plug tx transfer-power --testnet /tmp/tn --from alpha-val-4 --to alpha-new-1 --amount 100 --wait\n" +
					"  plug testnet kill --dir /tmp/tn alpha-val-4\n" +
					"  plug testnet add-node --dir /tmp/x --chain beta --output json | jq -r .public_key   # for --to-pubkey",
				Description: "Creates a node home for the chain (a new key, also in DIR/keys under NAME; the chain's genesis;\n" +
					"its current validators as peers), records it in the manifest and starts it. NAME defaults to\n" +
					"CHAIN-node-N. The node is configured to vote but holds no power, and no other node's config names\n" +
					"it: the validators refuse it, and it waits at height 0, retrying at most every 10 s. Once a\n" +
					"transfer of power to its key is committed, the validators admit it from that block on (their\n" +
					"allow lists follow the validator set); it connects, syncs the chain and votes.",
				Flags: []cli.Flag{
					dirFlag(),
					&cli.StringFlag{Name: "chain", Usage: "the chain to add the node to (required when the testnet has several)"},
				},
				Action: testnetAddNode,
			},
		},
	}
}

func testnetAddNode(c *cli.Context) error {
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	dir, err := testnetDir(c)
	if err != nil {
		return err
	}
	if c.NArg() > 1 {
		return fmt.Errorf("want at most one NAME argument, got %d", c.NArg())
	}
	n, err := testnet.AddNode(c.Context, dir, c.String("chain"), c.Args().First(), testnet.Options{})
	if err != nil {
		return err
	}
	return o.Emit(n, func(w io.Writer) error {
		if err := o.Fields([][2]string{{"name", n.Name}, {"chain", n.ChainID}, {"peer id", n.PeerID},
			{"node key", "ed25519 " + n.PublicKey}, {"address", n.Address}, {"http", n.HTTP}, {"p2p", n.P2P},
			{"home", n.Home}, {"pid", strconv.Itoa(n.PID)}, {"peers", strings.Join(n.Peers, ", ")}}); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "\nit holds no power: the validators refuse it until a transfer of power to its key commits, e.g.\n"+
			"  plug tx transfer-power --testnet %s --from VALIDATOR --to %s --amount N --wait\n", dir, n.Name)
		return err
	})
}

// testnetDir returns --dir, else HOME/testnet.
func testnetDir(c *cli.Context) (string, error) {
	d := c.String("dir")
	if d == "" {
		h, err := homeDir(c)
		if err != nil {
			return "", err
		}
		d = filepath.Join(h, "testnet")
	}
	return filepath.Abs(d)
}

func testnetUp(c *cli.Context) error {
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	if c.Args().Present() {
		return fmt.Errorf("unexpected argument %q: the directory is --dir DIR", c.Args().First())
	}
	dir, err := testnetDir(c)
	if err != nil {
		return err
	}
	var topo *testnet.Topology
	if f := c.String("topology"); f != "" {
		for _, n := range []string{"chains", "shards", "validators", "full-nodes", "relays", "base-port"} {
			if c.IsSet(n) {
				return fmt.Errorf("--%s and --topology exclude each other: put it in the topology file", n)
			}
		}
		if topo, err = testnet.LoadTopology(f); err != nil {
			return err
		}
	} else {
		topo = testnet.DefaultTopology(c.Int("chains"), c.Int("validators"))
		if c.IsSet("shards") {
			if c.IsSet("chains") {
				return errors.New("--shards and --chains exclude each other: a sharded network's chains are its shards")
			}
			topo = testnet.ShardTopology(c.Int("shards"), c.Int("validators"))
		}
		topo.BasePort = c.Int("base-port")
		for i := range topo.Chains {
			topo.Chains[i].FullNodes = c.Int("full-nodes")
		}
		if c.IsSet("relays") {
			topo.Relays = make([]testnet.RelaySpec, c.Int("relays"))
		}
		if err := topo.Normalize(); err != nil {
			return fmt.Errorf("%w: see `plug testnet up --help`", err)
		}
	}
	if _, err := testnet.LoadManifest(dir); err == nil && !c.Bool("reset") &&
		(c.IsSet("topology") || c.IsSet("chains") || c.IsSet("shards") || c.IsSet("validators") || c.IsSet("full-nodes") || c.IsSet("relays") || c.IsSet("base-port")) {
		o.Warn("%s already holds a testnet: starting it again as it was (the topology flags are ignored; --reset makes a new one)", dir)
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := testnet.Options{Reset: c.Bool("reset")}
	m, err := testnet.Up(ctx, topo, dir, opts)
	if err != nil {
		return err
	}
	bar := newTestnetBar(c.App.ErrWriter, "waiting for blocks")
	if bar != nil {
		opts.Progress = func(ready, total int) {
			bar.ChangeMax(total)
			bar.Set(ready)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
	err = testnet.Wait(wctx, m, testnet.ReadyHeight, opts)
	cancel()
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(c.App.ErrWriter)
	}
	if err == nil && len(m.Relays) > 0 {
		// The relays keep light clients current; the admin creates them once.
		wctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
		var n int
		n, err = testnet.Connect(wctx, m)
		cancel()
		if err == nil && n > 0 && !o.JSON() {
			fmt.Fprintf(c.App.ErrWriter, "created %d on-chain light clients for the relays\n", n)
		}
	}
	if err != nil {
		_, derr := testnet.DownReport(dir)
		return errors.Join(fmt.Errorf("the testnet in %s did not start: %w\nthe nodes are stopped; their logs stay in %s/CHAIN/NODE/%s",
			dir, err, dir, testnet.LogFile), derr)
	}
	if err := printTestnet(c, o, dir, !c.Bool("detach")); err != nil {
		return err
	}
	if c.Bool("detach") {
		return nil
	}
	if !o.JSON() {
		fmt.Fprintf(c.App.ErrWriter, "the testnet runs in the foreground: Ctrl-C stops it (or `plug testnet down --dir %s` from another shell)\n", dir)
	}
	if stoppedElsewhere(ctx, dir) {
		if !o.JSON() {
			fmt.Fprintln(c.App.ErrWriter, "the testnet was stopped (plug testnet down)")
		}
		return nil
	}
	stop()
	if !o.JSON() {
		fmt.Fprintln(c.App.ErrWriter, "\nstopping the testnet...")
	}
	if _, err := testnet.DownReport(dir); err != nil && !errors.Is(err, testnet.ErrNoTestnet) {
		return err
	}
	return nil
}

// stoppedElsewhere waits until ctx ends (false) or every node of the testnet
// in dir is stopped, e.g. by `plug testnet down` from another shell (true).
func stoppedElsewhere(ctx context.Context, dir string) bool {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		m, err := testnet.LoadManifest(dir)
		if err != nil {
			return true
		}
		running := false
		for _, ch := range m.Chains {
			for _, n := range ch.Nodes {
				running = running || n.PID != 0
			}
		}
		for _, r := range m.Relays {
			running = running || r.PID != 0
		}
		if !running {
			return true
		}
	}
}

// printTestnet prints the status of the testnet after up.
func printTestnet(c *cli.Context, o *output, dir string, foreground bool) error {
	r, err := testnet.Status(c.Context, dir)
	if err != nil {
		return err
	}
	return o.Emit(r, func(w io.Writer) error {
		if err := statusTable(o, r); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nkeyring: %s (unencrypted; admin, alice, bob, carol and one key per node and relay)\n", filepath.Join(dir, testnet.KeyringDir))
		if r.Network != "" {
			fmt.Fprintf(w, "network: %s (%d shards; each account lives on one, see `plug network place`)\n", r.Network, len(r.Chains))
			fmt.Fprintf(w, "try:     plug tx transfer --network %s --from alice --to carol --asset USD --amount 5 --wait\n", r.Network)
			fmt.Fprintf(w, "         plug query balances --network %s --asset USD --accounts alice,bob,carol --prove\n", r.Network)
			fmt.Fprintf(w, "         plug query supply --network %s --asset USD --prove\n", r.Network)
		} else {
			fmt.Fprintf(w, "try:     plug query balance --testnet %s%s --account alice --asset USD\n", dir, chainHint(r))
			fmt.Fprintf(w, "         plug tx transfer --testnet %s%s --from alice --to bob --asset USD --amount 5 --wait\n", dir, chainHint(r))
		}
		if r.Network == "" && len(r.Relays) > 0 && len(r.Chains) > 1 {
			a, b := r.Chains[0].ChainID, r.Chains[1].ChainID
			fmt.Fprintf(w, "         plug settle dvp --testnet %s --seller alice --buyer bob --delivery %s:EUR:100 --payment %s:USD:110 --wait\n", dir, a, b)
		}
		if !foreground {
			fmt.Fprintf(w, "stop:    plug testnet down --dir %s\n", dir)
		}
		return nil
	})
}

func chainHint(r *testnet.Report) string {
	if len(r.Chains) > 1 {
		return " --chain " + r.Chains[0].ChainID
	}
	return ""
}

func statusTable(o *output, r *testnet.Report) error {
	var rows [][]string
	for _, c := range r.Chains {
		for _, n := range c.Nodes {
			role := "validator"
			if !n.Validator {
				role = "full"
			}
			state, height, root, pid := "down", "-", "-", "-"
			if n.Alive {
				state, height, pid = "up", strconv.FormatUint(n.Height, 10), strconv.Itoa(n.PID)
				if n.StateRoot != "" {
					root = n.StateRoot[:min(16, len(n.StateRoot))]
				}
				switch {
				case n.Error != "":
					state = "not answering"
				case n.CatchingUp:
					state = "catching up"
				}
			}
			rows = append(rows, []string{c.ChainID, n.Name, role, state, height, root, n.HTTP, pid})
		}
	}
	if err := o.Table([]string{"CHAIN", "NODE", "ROLE", "STATE", "HEIGHT", "STATE ROOT", "HTTP", "PID"}, rows); err != nil {
		return err
	}
	if len(r.Relays) == 0 {
		return nil
	}
	rows = nil
	for _, rl := range r.Relays {
		state, pending, lag, pid := "down", "-", "-", "-"
		if rl.Alive {
			state, pending, pid = "up", strconv.Itoa(rl.Pending), strconv.Itoa(rl.PID)
			if rl.Error != "" {
				state, pending = "not answering", "-"
			}
			worst := int64(-1)
			for _, p := range rl.Paths {
				if !p.Exists {
					state = "no light client"
				}
				worst = max(worst, p.Lag)
			}
			if worst >= 0 {
				lag = strconv.FormatInt(worst, 10)
			}
		}
		rows = append(rows, []string{rl.Name, strings.Join(rl.Chains, ","), state, lag, pending, rl.Metrics, pid})
	}
	fmt.Fprintln(o.w)
	return o.Table([]string{"RELAY", "CHAINS", "STATE", "MAX LAG", "PENDING XTXS", "METRICS", "PID"}, rows)
}

func testnetStatus(c *cli.Context) error {
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	dir, err := testnetDir(c)
	if err != nil {
		return err
	}
	r, err := testnet.Status(c.Context, dir)
	if err != nil {
		return err
	}
	return o.Emit(r, func(io.Writer) error { return statusTable(o, r) })
}

func testnetDown(c *cli.Context) error {
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	dir, err := testnetDir(c)
	if err != nil {
		return err
	}
	killed, err := testnet.DownReport(dir)
	if err != nil {
		return err
	}
	if killed == nil {
		killed = []string{}
	}
	return o.Emit(map[string]any{"dir": dir, "stopped": true, "killed": killed}, func(w io.Writer) error {
		if len(killed) > 0 {
			fmt.Fprintf(w, "killed after the grace period: %v\n", killed)
		}
		_, err := fmt.Fprintf(w, "the testnet in %s is stopped; `plug testnet up --dir %s` starts it again\n", dir, dir)
		return err
	})
}

// nodeArg returns the one NODE argument.
func nodeArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("want one NAME argument (a node or relay), got %d: see `plug testnet status` for the names", c.NArg())
	}
	return c.Args().First(), nil
}

func testnetKill(c *cli.Context) error {
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	dir, err := testnetDir(c)
	if err != nil {
		return err
	}
	name, err := nodeArg(c)
	if err != nil {
		return err
	}
	if err := testnet.Kill(dir, name); err != nil {
		return err
	}
	return o.Emit(map[string]any{"name": name, "killed": true}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "killed %s (SIGKILL); `plug testnet restart --dir %s %s` brings it back\n", name, dir, name)
		return err
	})
}

func testnetRestart(c *cli.Context) error {
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	dir, err := testnetDir(c)
	if err != nil {
		return err
	}
	name, err := nodeArg(c)
	if err != nil {
		return err
	}
	if err := testnet.Restart(dir, name, testnet.Options{}); err != nil {
		return err
	}
	res := map[string]any{"name": name, "restarted": true}
	m, err := testnet.LoadManifest(dir)
	if err != nil {
		return err
	}
	if r := m.Relay(name); r != nil {
		// A relay resumes from its db; there is nothing to catch up with.
		return o.Emit(res, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "relay %s is running again; it resumes from %s\n", name, filepath.Join(r.Home, "relay.db"))
			return err
		})
	}
	if c.Bool("wait") {
		ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
		defer cancel()
		h, err := testnet.WaitCaughtUp(ctx, dir, name)
		if err != nil {
			return err
		}
		res["height"] = h
	}
	return o.Emit(res, func(w io.Writer) error {
		m, err := testnet.LoadManifest(dir)
		if err != nil {
			return err
		}
		_, n, err := m.Node(name)
		if err != nil {
			return err
		}
		if h, ok := res["height"]; ok {
			_, err = fmt.Fprintf(w, "%s is running again (pid %d) and has caught up at height %d\n", name, n.PID, h)
			return err
		}
		_, err = fmt.Fprintf(w, "%s is running again (pid %d); `plug testnet status --dir %s` shows it catch up\n", name, n.PID, dir)
		return err
	})
}

// newTestnetBar returns a progress bar on w when w is a terminal, else nil.
func newTestnetBar(w io.Writer, desc string) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions(1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetElapsedTime(true),
	)
}
