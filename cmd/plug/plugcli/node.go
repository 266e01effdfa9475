package plugcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/node"
)

// nodeCommand returns `plug node`.
func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "run a node of a chain, show its identity, check or resync its databases",
		UsageText: "plug node COMMAND --home DIR\n\n" +
			"plug node start --home /srv/plug/val-1\n" +
			"plug node id --home /srv/plug/val-1 --output json\n" +
			"plug node check --home /srv/plug/val-1\n" +
			"plug node resync --home /srv/plug/val-1",
		Description: "A node home is made by `plug init`; see docs/operator.md.",
		Subcommands: []*cli.Command{nodeStartCommand(), nodeIDCommand(), nodeCheckCommand(), nodeResyncCommand(), nodeExportCommand(), nodeReindexCommand()},
	}
}

// startOut is what `plug node start` prints once listening.
type startOut struct {
	Name      string   `json:"name"`
	ChainID   string   `json:"chain_id"`
	PeerID    string   `json:"peer_id"`
	P2P       []string `json:"p2p"`
	HTTP      string   `json:"http,omitempty"`
	Metrics   string   `json:"metrics,omitempty"`
	Validator bool     `json:"validator"`
	Height    uint64   `json:"height"`
}

// testEquivocateEnv names a node that should equivocate (node.Config.TestEquivocate):
// real-process tests of accountability set it for one node of a testnet.
const testEquivocateEnv = "PLUG_TEST_EQUIVOCATE"

func nodeStartCommand() *cli.Command {
	return &cli.Command{
		Name:  "start",
		Usage: "run the node until SIGINT or SIGTERM",
		UsageText: "plug node start --home DIR [--log-level LEVEL]\n\n" +
			"plug node start --home /srv/plug/val-1\n" +
			"plug node start --home ./val-1 --log-level debug 2> node.log",
		Description: "Reads HOME/config.toml, HOME/genesis.json and HOME/node_key.json, opens (or creates)\n" +
			"HOME/state.db and HOME/chain.db, joins the chain's peers and serves the HTTP gateway with\n" +
			"/metrics on http.listen. It prints its listen addresses on standard output once started and\n" +
			"logs to standard error. SIGINT or SIGTERM stops it cleanly (exit code 0); a node killed hard\n" +
			"recovers from its databases on the next start.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Usage: "log level of every subsystem (debug, info, warn, error); overrides [log] level"},
			&cli.StringFlag{Name: "http-listen", Usage: "override http.listen of config.toml (host:port, port 0 picks one)"},
			&cli.StringFlag{Name: "p2p-listen", Usage: "override p2p.listen of config.toml (multiaddr)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q: `plug node start` takes flags only", c.Args().First())
			}
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			dir, err := homeDir(c)
			if err != nil {
				return err
			}
			h, err := node.LoadHome(dir, app.Registry(), app.Models())
			if err != nil {
				return err
			}
			if err := h.SetupLogging(c.String("log-level")); err != nil {
				return err
			}
			for _, w := range h.Warnings {
				o.Warn("%s", w)
			}
			if v := c.String("http-listen"); v != "" {
				h.HTTPListen = v
			}
			if v := c.String("p2p-listen"); v != "" {
				h.Config.P2PListen = v
			}
			if name := os.Getenv(testEquivocateEnv); name != "" && name == h.Config.Name {
				h.Config.TestEquivocate = true
				o.Warn("%s=%s: this validator signs conflicting votes, for tests of accountability; the chain will jail it", testEquivocateEnv, name)
			}
			return runNode(c, o, h)
		},
	}
}

// runNode runs the node of h and its gateway until a signal.
func runNode(c *cli.Context, o *output, h *node.Home) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	metrics := gateway.NewMetrics(reg)
	cfg := h.Config
	cfg.Metrics, cfg.Version = metrics, version
	n, err := node.New(cfg)
	if err != nil {
		// A damaged database: one line that names the file and the repair.
		if fe := (*boltcheck.Error)(nil); errors.As(err, &fe) {
			return fe
		}
		return fmt.Errorf("open node in %s: %w", h.Dir, err)
	}
	closed := false
	defer func() {
		if !closed {
			n.Close()
		}
	}()
	var ln net.Listener
	if h.HTTPListen != "" {
		if ln, err = net.Listen("tcp", h.HTTPListen); err != nil {
			return fmt.Errorf("gateway: cannot listen on %s (%v): is another node running with this address? "+
				"change http.listen in %s/%s", h.HTTPListen, err, h.Dir, node.ConfigFile)
		}
	}
	if err := n.Start(ctx); err != nil {
		if ln != nil {
			ln.Close()
		}
		return fmt.Errorf("start node: %w (check p2p.listen and p2p.peers in %s/%s)", err, h.Dir, node.ConfigFile)
	}
	id, _ := n.PeerID()
	st := n.Status()
	out := startOut{Name: cfg.Name, ChainID: cfg.ChainID, PeerID: id.String(), P2P: n.Addrs(),
		Validator: cfg.Validator, Height: st.Height}
	gwDone := make(chan error, 1)
	if ln != nil {
		url := localURL(ln.Addr().String())
		out.HTTP, out.Metrics = url, url+"/metrics"
		opts := append(h.File.HTTP.GatewayOptions(), gateway.WithRegistry(reg), gateway.WithMetrics(metrics), gateway.WithRoutes(app.Routes()...))
		gw := gateway.New(n, opts...)
		go func() { gwDone <- gw.Serve(ctx, ln) }()
	} else {
		close(gwDone)
	}
	if err := o.Emit(out, func(w io.Writer) error {
		fmt.Fprintf(w, "node %s of chain %s started at height %d (validator: %v)\n", out.Name, out.ChainID, out.Height, out.Validator)
		fmt.Fprintf(w, "peer id: %s\n", out.PeerID)
		for _, a := range out.P2P {
			fmt.Fprintf(w, "p2p:     %s\n", a)
		}
		if out.HTTP != "" {
			fmt.Fprintf(w, "http:    %s\n", out.HTTP)
			fmt.Fprintf(w, "metrics: %s\n", out.Metrics)
		} else {
			fmt.Fprintln(w, "http:    disabled (http.listen is empty)")
		}
		return nil
	}); err != nil {
		return err
	}
	if f, ok := o.w.(*os.File); ok {
		f.Sync()
	}
	go syncBar(ctx, o, n)

	var gwErr error
	select {
	case <-ctx.Done():
		gwErr = <-gwDone
	case gwErr = <-gwDone:
		// The gateway failed on its own: stop the node too.
	}
	stop()
	closed = true
	if err := n.Close(); err != nil {
		return fmt.Errorf("closing the node: %w", err)
	}
	if gwErr != nil && !errors.Is(gwErr, context.Canceled) {
		return gwErr
	}
	if !o.JSON() {
		fmt.Fprintln(o.w, "node stopped")
	}
	return nil
}

// nodeIDOut is `plug node id` in --output json.
type nodeIDOut struct {
	Name      string   `json:"name"`
	ChainID   string   `json:"chain_id"`
	PeerID    string   `json:"peer_id"`
	Address   string   `json:"address"`
	PublicKey string   `json:"public_key"`
	Scheme    string   `json:"scheme"`
	P2P       []string `json:"p2p"`
}

func nodeIDCommand() *cli.Command {
	return &cli.Command{
		Name:  "id",
		Usage: "print the node's peer ID, account address, public key and p2p address",
		UsageText: "plug node id --home DIR\n\n" +
			"plug node id --home /srv/plug/val-1\n" +
			"plug node id --home ./val-2 --output json | jq -r '.p2p[0]'   # a peers entry for other nodes",
		Description: "The p2p address is built from p2p.listen; if it listens on 0.0.0.0, replace that with an\n" +
			"address other nodes can reach before putting it in their p2p.peers.",
		Action: func(c *cli.Context) error {
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			dir, err := homeDir(c)
			if err != nil {
				return err
			}
			f, err := node.ReadConfig(dir + "/" + node.ConfigFile)
			if err != nil {
				return err
			}
			key, err := node.ReadNodeKey(dir + "/" + node.NodeKeyFile)
			if err != nil {
				return err
			}
			pub := key.Public()
			id, err := node.PeerIDOf(pub)
			if err != nil {
				return err
			}
			out := nodeIDOut{Name: f.Name, ChainID: f.ChainID, PeerID: id.String(), Address: pub.Address().String(),
				PublicKey: fmt.Sprintf("%x", pub.Key), Scheme: string(pub.Scheme), P2P: []string{}}
			if f.P2P.Listen != "" {
				out.P2P = append(out.P2P, f.P2P.Listen+"/p2p/"+id.String())
			}
			return o.Emit(out, func(io.Writer) error {
				p2p := ""
				if len(out.P2P) > 0 {
					p2p = out.P2P[0]
				}
				return o.Fields([][2]string{{"name", out.Name}, {"chain", out.ChainID}, {"peer id", out.PeerID},
					{"address", out.Address}, {"public key", out.Scheme + " " + out.PublicKey}, {"p2p", p2p}})
			})
		},
	}
}

// syncBar shows a progress bar on a terminal while the node catches up with blocks
// it missed (never in json mode or when standard error is not a terminal).
func syncBar(ctx context.Context, o *output, n *node.Node) {
	if o.JSON() || o.errw != os.Stderr || !term.IsTerminal(int(os.Stderr.Fd())) {
		return
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var bar *progressbar.ProgressBar
	var from uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := n.Status()
		switch {
		case st.CatchingUp && st.BestHeight > st.Height && bar == nil:
			from = st.Height
			bar = progressbar.NewOptions64(int64(st.BestHeight-from),
				progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription("catching up"),
				progressbar.OptionShowCount(),
				progressbar.OptionClearOnFinish())
		case bar != nil && !st.CatchingUp:
			_ = bar.Finish()
			bar = nil
		case bar != nil:
			if st.BestHeight > from {
				bar.ChangeMax64(int64(st.BestHeight - from))
			}
			_ = bar.Set64(int64(st.Height - from))
		}
	}
}
