package plugcli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// Output formats of --output.
const (
	outputText = "text"
	outputJSON = "json"
)

// globalFlags returns fresh instances of the flags every command accepts.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "output",
			Aliases: []string{"o"},
			Value:   outputText,
			Usage:   "output format: text (tables for people) or json (one JSON document on stdout, for scripts)",
		},
		&cli.StringFlag{
			Name:  "home",
			Usage: "PLUG's home directory (default: $PLUG_HOME, else ~/.plug)",
		},
	}
}

// flagString returns the value of the string flag name as given on the
// innermost command that set it (global flags exist on several levels), or
// "" if no level set it.
func flagString(c *cli.Context, name string) string {
	for _, cc := range c.Lineage() {
		if cc.App == nil {
			continue
		}
		if slices.Contains(cc.LocalFlagNames(), name) {
			return cc.String(name)
		}
	}
	return ""
}

// homeDir returns --home, else $PLUG_HOME, else ~/.plug.
func homeDir(c *cli.Context) (string, error) {
	if h := flagString(c, "home"); h != "" {
		return h, nil
	}
	if h := os.Getenv("PLUG_HOME"); h != "" {
		return h, nil
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find your home directory (%v): pass --home or set PLUG_HOME", err)
	}
	return filepath.Join(u, ".plug"), nil
}

// output prints a command's result in the format chosen with --output.
type output struct {
	json bool
	w    io.Writer // stdout
	errw io.Writer // stderr
}

// newOutput returns the output of the command c runs.
func newOutput(c *cli.Context) (*output, error) {
	f := flagString(c, "output")
	if f == "" {
		f = outputText
	}
	switch f {
	case outputText, outputJSON:
	default:
		return nil, fmt.Errorf("unknown output format %q: use --output text or --output json", f)
	}
	return &output{json: f == outputJSON, w: c.App.Writer, errw: c.App.ErrWriter}, nil
}

// JSON reports whether the output format is json.
func (o *output) JSON() bool { return o.json }

// Emit prints v as one JSON document in json mode, else calls text.
func (o *output) Emit(v any, text func(w io.Writer) error) error {
	if o.json {
		return writeJSON(o.w, v)
	}
	return text(o.w)
}

// Table prints rows under header, aligned in columns (text mode only).
func (o *output) Table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Fields prints one "name: value" line per pair, values aligned (text mode).
func (o *output) Fields(pairs [][2]string) error {
	tw := tabwriter.NewWriter(o.w, 0, 0, 1, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

// Warn prints a warning on stderr, in every mode.
func (o *output) Warn(format string, args ...any) {
	fmt.Fprintf(o.errw, "plug: warning: "+format+"\n", args...)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printError reports err: "plug: <message>" on stderr and, in json mode,
// {"error": "<message>"} on stdout.
func printError(stdout, stderr io.Writer, jsonMode bool, err error) {
	fmt.Fprintf(stderr, "plug: %v\n", err)
	if jsonMode {
		writeJSON(stdout, map[string]string{"error": err.Error()})
	}
}

// jsonRequested reports whether args ask for --output json; run uses it for
// errors raised before or while flags are parsed.
func jsonRequested(args []string) bool {
	for i, a := range args {
		if a == "--" {
			break
		}
		switch strings.TrimLeft(a, "-") {
		case "output=json", "o=json":
			return strings.HasPrefix(a, "-")
		case "output", "o":
			if strings.HasPrefix(a, "-") && i+1 < len(args) && args[i+1] == outputJSON {
				return true
			}
		}
	}
	return false
}
