// Package plugcli is PLUG's command-line tool, `plug`, as a library: cmd/plug is
// a one-line main around Main, and an application that adds transforms of its
// own (builtin.Extend) builds its own plug the same way:
//
//	func main() {
//		builtin.Extend(myapp.Register, myapp.AddModels)
//		plugcli.Main()
//	}
//
// The app is assembled from command groups, one file per group (keys.go
// returns the `plug keys` command, and so on). To add a group, write a
// function returning its *cli.Command and list it in groups below. Every leaf
// command automatically accepts the global flags (--output, --home) wherever
// they appear on the command line, and flags may follow positional arguments.
// Use newOutput (output.go) to print results, so that --output json works.
package plugcli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// groups returns the top-level commands, in help order.
func groups() []*cli.Command {
	return []*cli.Command{
		demoCommand(),
		keysCommand(),
		initCommand(),
		genesisCommand(),
		nodeCommand(),
		txCommand(),
		queryCommand(),
		settleCommand(),
		xchainCommand(),
		networkCommand(),
		testnetCommand(),
		relayCommand(),
		versionCommand(),
		completionCommand(),
	}
}

// Main runs plug with the process's arguments and exits with its exit code.
func Main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run runs plug with args (args[0] is the program name) and returns the exit
// code.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(permuteArgs(app, args))
	if err == nil {
		return 0
	}
	var rep reportedError
	if errors.As(err, &rep) {
		// The result, with its error, is already on stdout.
		fmt.Fprintf(stderr, "plug: %v\n", err)
		return 1
	}
	printError(stdout, stderr, jsonRequested(args), err)
	return 1
}

// newApp builds the plug app writing to stdout and stderr.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "plug",
		Usage:   "permissioned chains that settle trades atomically across ledgers",
		Version: buildVersion().Version,
		Description: "Run `plug COMMAND --help` for a command's flags and examples.\n" +
			"Every command prints a table for people by default and one JSON document with --output json.",
		Flags:                globalFlags(),
		Commands:             groups(),
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		// Errors are printed once, by run; urfave/cli must not exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
		Action:         groupAction,
		OnUsageError:   usageError,
	}
	for _, c := range app.Commands {
		prepare(c)
	}
	return app
}

// prepare gives every leaf under c the global flags, and every command the
// shared handlers for usage errors and unknown subcommands.
func prepare(c *cli.Command) {
	c.OnUsageError = usageError
	if len(c.Subcommands) == 0 {
		c.Flags = append(c.Flags, globalFlags()...)
		return
	}
	if c.Action == nil {
		c.Action = groupAction
	}
	for _, s := range c.Subcommands {
		prepare(s)
	}
}

// groupAction runs for a command group given no known subcommand: it shows
// the group's help, or fails on an unknown subcommand.
func groupAction(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unknown command %q: see `%s --help`", c.Args().First(), commandPath(c))
	}
	if c.Command == nil || c.Command.Name == "" || c.Command.Name == c.App.Name {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

func usageError(c *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%v: see `%s --help`", err, commandPath(c))
}

// commandPath returns "plug keys add" for the command c runs.
func commandPath(c *cli.Context) string {
	var names []string
	for _, cc := range c.Lineage() {
		if cc.Command != nil && cc.Command.Name != "" && cc.Command.Name != c.App.Name {
			names = append([]string{cc.Command.Name}, names...)
		}
	}
	return strings.Join(append([]string{c.App.Name}, names...), " ")
}

// permuteArgs moves the flags of the leaf command that follow its positional
// arguments ahead of them ("plug keys add alice --scheme p256" works like
// "plug keys add --scheme p256 alice"), as Go's flag package stops at the
// first positional argument. Everything after "--" stays positional.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	// Shell completion (plug completion) asks with this flag last, where
	// urfave/cli looks for it: it stays last.
	if n := len(args); args[n-1] == "--generate-bash-completion" {
		return append(permuteArgs(app, slices.Clone(args[:n-1])), args[n-1])
	}
	cmds, flags := app.Commands, app.Flags
	out := []string{args[0]}
	i := 1
	var leaf *cli.Command
	for i < len(args) && leaf == nil {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if isFlagArg(a) {
			n := flagArgs(flags, a)
			out = append(out, args[i:min(i+n, len(args))]...)
			i += n
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			return append(out, args[i:]...) // unknown command or group argument
		}
		out = append(out, a)
		i++
		if len(next.Subcommands) == 0 {
			leaf = next
		}
		cmds, flags = next.Subcommands, next.Flags
	}
	if leaf == nil {
		return out
	}
	var fl, pos []string
	dashdash := false
	for i < len(args) {
		a := args[i]
		switch {
		case dashdash:
			pos = append(pos, a)
			i++
		case a == "--":
			dashdash = true
			i++
		case isFlagArg(a):
			n := flagArgs(leaf.Flags, a)
			fl = append(fl, args[i:min(i+n, len(args))]...)
			i += n
		default:
			pos = append(pos, a)
			i++
		}
	}
	out = append(out, fl...)
	if dashdash {
		out = append(out, "--")
	}
	return append(out, pos...)
}

func isFlagArg(a string) bool { return len(a) > 1 && a[0] == '-' }

// flagArgs returns how many arguments flag argument a takes up: 2 for
// "--name value" of a flag with a value, else 1.
func flagArgs(flags []cli.Flag, a string) int {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				if tv, ok := f.(interface{ TakesValue() bool }); ok && tv.TakesValue() {
					return 2
				}
				return 1
			}
		}
	}
	return 1
}
