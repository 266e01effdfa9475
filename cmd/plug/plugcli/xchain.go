package plugcli

import "github.com/urfave/cli/v2"

// xchainCommand returns `plug xchain`.
func xchainCommand() *cli.Command {
	return &cli.Command{
		Name:        "xchain",
		Usage:       "inspect crosschain transactions",
		UsageText:   "plug xchain status ID|PREFIX|--ref R --party P --testnet DIR [--prove]\nplug xchain list --party P --testnet DIR [--state S] [--since T] [--asset A]",
		Subcommands: []*cli.Command{settleStatusCommand("xchain"), xchainListCommand()},
	}
}
