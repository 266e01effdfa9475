package plugcli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	logging "github.com/ipfs/go-log/v2"
	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/relay"
)

// relayCommand returns `plug relay`.
func relayCommand() *cli.Command {
	cfgFlag := &cli.StringFlag{Name: "config", Value: "relay.toml", Usage: "the relay's TOML config (see docs/relay.md)"}
	return &cli.Command{
		Name:  "relay",
		Usage: "run a crosschain relay: keep light clients current and carry prepare/decide/finish proofs",
		Subcommands: []*cli.Command{
			{
				Name:      "start",
				Usage:     "run the relay until SIGINT or SIGTERM",
				UsageText: "plug relay start --config relay.toml [--log-level debug]",
				Description: "Follows the chains of the config over their gateways, updates every path's on-chain light\n" +
					"client, and submits xchain/decide and xchain/finish with proofs, a pass's steps for a chain\n" +
					"packed into xchain/batch transactions (batch_steps; 1 sends one per transaction). Its progress\n" +
					"is kept in the config's bbolt db, so a restart resumes. /metrics and /status are served on\n" +
					"metrics_listen.",
				Flags: []cli.Flag{cfgFlag, &cli.StringFlag{Name: "log-level", Usage: "log level (debug, info, warn, error)"}},
				Action: func(c *cli.Context) error {
					cfg, err := relay.LoadConfig(c.String("config"))
					if err != nil {
						return err
					}
					if lvl := c.String("log-level"); lvl != "" {
						if err := logging.SetLogLevel("plug/relay", lvl); err != nil {
							return err
						}
					} else {
						_ = logging.SetLogLevel("plug/relay", "info")
					}
					ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
					defer stop()
					return relay.Run(ctx, cfg)
				},
			},
			{
				Name:      "status",
				Usage:     "show each light client's height against its chain, and the pending crosschain transactions",
				UsageText: "plug relay status --config relay.toml [--output json]",
				Flags:     []cli.Flag{cfgFlag},
				Action: func(c *cli.Context) error {
					o, err := newOutput(c)
					if err != nil {
						return err
					}
					cfg, err := relay.LoadConfig(c.String("config"))
					if err != nil {
						return err
					}
					rep, err := relay.Status(c.Context, cfg)
					if err != nil {
						return err
					}
					return o.Emit(rep, func(w io.Writer) error {
						rows := make([][]string, 0, len(rep.Paths))
						for _, p := range rep.Paths {
							st := "ok"
							switch {
							case p.Error != "":
								st = p.Error
							case !p.Exists:
								st = "no light client (lc/create it)"
							}
							rows = append(rows, []string{p.Source + " -> " + p.Dest, strconv.FormatUint(p.SourceHeight, 10),
								strconv.FormatUint(p.ClientHeight, 10), strconv.FormatInt(p.Lag, 10), st})
						}
						if err := o.Table([]string{"PATH", "SOURCE HEIGHT", "CLIENT HEIGHT", "LAG", "STATUS"}, rows); err != nil {
							return err
						}
						pending := strconv.Itoa(rep.Pending)
						if rep.Pending < 0 {
							pending = "unknown (db unreadable)"
						}
						_, err := fmt.Fprintf(w, "\npending xtxs: %s (from %s)\n", pending, rep.Source)
						return err
					})
				},
			},
		},
	}
}
