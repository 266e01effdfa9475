package plugcli

import "github.com/urfave/cli/v2"

// xchainCommand returns `plug xchain`.
func xchainCommand() *cli.Command {
	return &cli.Command{
		Name:        "xchain",
		Usage:       "inspect crosschain transactions",
		UsageText:   "plug xchain status ID|--ref R --party P --testnet DIR [--prove]",
		Subcommands: []*cli.Command{settleStatusCommand("xchain")},
	}
}
