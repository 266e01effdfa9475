// Command plug is PLUG's single command-line tool. The chain-core milestone ships only
// `plug version`; keys, node, tx, query, testnet and the rest arrive with the node.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := &cli.App{
		Name:    "plug",
		Usage:   "permissioned chains that settle trades atomically across ledgers",
		Version: version,
		Commands: []*cli.Command{{
			Name:  "version",
			Usage: "print the version",
			Action: func(c *cli.Context) error {
				fmt.Fprintln(c.App.Writer, version)
				return nil
			},
		}},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "plug:", err)
		os.Exit(1)
	}
}
