package plugcli

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/keyring"
)

// keysCommand returns `plug keys`, the keyring command group.
func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "manage the keyring: add, list, show, import, export and delete signing keys",
		UsageText: "plug keys COMMAND [flags] [args]\n\n" +
			"plug keys add alice\n" +
			"plug keys list --output json\n" +
			"PLUG_PASSPHRASE=... plug keys show alice",
		Description: "The keyring is a directory (default ~/.plug/keys) with one file per key.\n" +
			"The file backend (default) encrypts each private key with a passphrase (Argon2id + XChaCha20-Poly1305);\n" +
			"the test backend stores keys UNENCRYPTED and is meant for local testnets only.\n" +
			"The passphrase comes from --passphrase-file, else $PLUG_PASSPHRASE, else a prompt on the terminal.\n" +
			"See docs/keys.md.",
		Subcommands: []*cli.Command{
			keysAddCommand(),
			keysListCommand(),
			keysShowCommand(),
			keysImportCommand(),
			keysExportCommand(),
			keysDeleteCommand(),
		},
	}
}

func keysAddCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "generate a new key and store it under NAME",
		ArgsUsage: "NAME",
		UsageText: "plug keys add NAME [--scheme ed25519|p256]\n\n" +
			"plug keys add alice\n" +
			"plug keys add legacy-pki --scheme p256\n" +
			"PLUG_PASSPHRASE=... plug keys add alice --output json\n" +
			"plug keys add val-1 --keyring-backend test --home ./testnet/val-1",
		Description: "NAME is 1 to 64 characters from a-z A-Z 0-9 . _ - (not starting with . or -).\n" +
			"With the file backend, a new key needs a passphrase of at least 8 characters.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "scheme", Value: string(crypto.Ed25519), Usage: "signature scheme: ed25519 or p256"},
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			name, err := oneArg(c, "NAME")
			if err != nil {
				return err
			}
			o, kr, err := keysSetup(c, true)
			if err != nil {
				return err
			}
			info, err := kr.Add(name, crypto.SchemeID(c.String("scheme")))
			if err != nil {
				return err
			}
			return printKey(o, info)
		},
	}
}

func keysListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the stored keys (no passphrase needed)",
		UsageText: "plug keys list\n\n" +
			"plug keys list --output json | jq -r '.[].address'\n" +
			"plug keys list --keyring-dir /srv/plug/keys",
		Flags: keyringFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q: `plug keys list` takes none", c.Args().First())
			}
			o, kr, err := keysSetup(c, false)
			if err != nil {
				return err
			}
			infos, lerr := kr.List()
			if infos == nil {
				return lerr
			}
			if lerr != nil {
				for _, e := range strings.Split(lerr.Error(), "\n") {
					o.Warn("%s", e)
				}
			}
			if o.JSON() {
				keys := make([]keyJSON, len(infos))
				for i, in := range infos {
					keys[i] = toKeyJSON(in)
				}
				return writeJSON(o.w, keys)
			}
			if len(infos) == 0 {
				fmt.Fprintf(o.w, "no keys in %s: add one with `plug keys add NAME`\n", kr.Dir())
				return nil
			}
			rows := make([][]string, len(infos))
			for i, in := range infos {
				rows[i] = []string{in.Name, in.Address.String(), string(in.Scheme), backendLabel(in)}
			}
			return o.Table([]string{"NAME", "ADDRESS", "SCHEME", "BACKEND"}, rows)
		},
	}
}

func keysShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show a key's name, address, scheme and public key (no passphrase needed)",
		ArgsUsage: "NAME|ADDRESS",
		UsageText: "plug keys show NAME|ADDRESS\n\n" +
			"plug keys show alice\n" +
			"plug keys show 3f1c...e2 --output json\n" +
			"plug keys show alice -o json | jq -r .address",
		Flags: keyringFlags(),
		Action: func(c *cli.Context) error {
			arg, err := oneArg(c, "NAME or ADDRESS")
			if err != nil {
				return err
			}
			o, kr, err := keysSetup(c, false)
			if err != nil {
				return err
			}
			info, err := kr.Resolve(arg)
			if err != nil {
				return err
			}
			return printKey(o, info)
		},
	}
}

func keysImportCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "store an existing private key under NAME",
		ArgsUsage: "NAME",
		UsageText: "plug keys import NAME (--file FILE | --hex SECRET) [--scheme ed25519|p256]\n\n" +
			"plug keys import alice --file alice.hex\n" +
			"PLUG_PASSPHRASE=... plug keys export alice --unsafe-export-private-key | plug keys import alice --file - --keyring-dir /other/keys\n" +
			"plug keys import legacy --scheme p256 --hex 8f0e...",
		Description: "The secret is the hex private key printed by `plug keys export` (ed25519: the 32-byte seed;\n" +
			"p256: the 32-byte scalar). Prefer --file (\"-\" reads standard input): --hex leaves the secret\n" +
			"in your shell history and in the process list.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "scheme", Value: string(crypto.Ed25519), Usage: "signature scheme of the key: ed25519 or p256"},
			&cli.StringFlag{Name: "hex", Usage: "the private key in hex (unsafe: visible to other local users)"},
			&cli.StringFlag{Name: "file", Usage: "read the hex private key from this file (- for standard input)"},
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			name, err := oneArg(c, "NAME")
			if err != nil {
				return err
			}
			var text string
			switch h, f := c.String("hex"), c.String("file"); {
			case h != "" && f != "":
				return errors.New("give the secret with --hex or --file, not both")
			case h != "":
				text = h
			case f == "-":
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<16))
				if err != nil {
					return fmt.Errorf("reading the secret from standard input: %w", err)
				}
				text = string(b)
			case f != "":
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("cannot read the secret: %w", err)
				}
				text = string(b)
			default:
				return errors.New("no secret given: pass --file FILE (or --file - for standard input) or --hex SECRET")
			}
			text = strings.TrimPrefix(strings.TrimSpace(text), "0x")
			secret, err := hex.DecodeString(text)
			if err != nil {
				return errors.New("the secret is not hex: give the private key as printed by `plug keys export`")
			}
			defer clear(secret)
			o, kr, err := keysSetup(c, true)
			if err != nil {
				return err
			}
			info, err := kr.Import(name, crypto.SchemeID(c.String("scheme")), secret)
			if err != nil {
				return err
			}
			return printKey(o, info)
		},
	}
}

func keysExportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "print a key's private key in hex (dangerous)",
		ArgsUsage: "NAME|ADDRESS",
		UsageText: "plug keys export NAME|ADDRESS --unsafe-export-private-key\n\n" +
			"plug keys export alice --unsafe-export-private-key > alice.hex\n" +
			"plug keys export alice --unsafe-export-private-key --output json",
		Description: "Anyone who sees the printed secret controls the key. It is printed only with\n" +
			"--unsafe-export-private-key; store it as carefully as the key itself.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "unsafe-export-private-key", Usage: "confirm that the private key may be printed"},
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			arg, err := oneArg(c, "NAME or ADDRESS")
			if err != nil {
				return err
			}
			if !c.Bool("unsafe-export-private-key") {
				return fmt.Errorf("refusing to print the private key of %q: anyone who sees it controls the key; "+
					"confirm with --unsafe-export-private-key", arg)
			}
			o, kr, err := keysSetup(c, false)
			if err != nil {
				return err
			}
			info, err := kr.Resolve(arg)
			if err != nil {
				return err
			}
			secret, err := kr.Export(info.Name)
			if err != nil {
				return err
			}
			defer clear(secret)
			h := hex.EncodeToString(secret)
			if o.JSON() {
				v := toKeyJSON(info)
				v.PrivateKey = h
				return writeJSON(o.w, v)
			}
			_, err = fmt.Fprintln(o.w, h)
			return err
		},
	}
}

func keysDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"rm"},
		Usage:     "delete a key from the keyring (cannot be undone)",
		ArgsUsage: "NAME|ADDRESS",
		UsageText: "plug keys delete NAME|ADDRESS --yes\n\n" +
			"plug keys delete alice --yes\n" +
			"plug keys delete alice --yes --output json",
		Description: "Deleting needs no passphrase but --yes. Export the key first if you may need it again.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "confirm the deletion"},
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			arg, err := oneArg(c, "NAME or ADDRESS")
			if err != nil {
				return err
			}
			o, kr, err := keysSetup(c, false)
			if err != nil {
				return err
			}
			info, err := kr.Resolve(arg)
			switch {
			case errors.Is(err, keyring.ErrCorrupt):
				info = keyring.Info{Name: arg} // delete the unreadable file by name
			case err != nil:
				return err
			}
			if !c.Bool("yes") {
				return fmt.Errorf("refusing to delete key %q without --yes: deletion cannot be undone "+
					"(keep a copy with `plug keys export %s --unsafe-export-private-key`)", info.Name, info.Name)
			}
			if err := kr.Delete(info.Name); err != nil {
				return err
			}
			addr := ""
			if !info.Address.IsZero() {
				addr = info.Address.String()
			}
			return o.Emit(map[string]string{"deleted": info.Name, "address": addr}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "deleted key %q %s\n", info.Name, addr)
				return err
			})
		},
	}
}

// keysSetup returns the command's output and keyring. Commands that handle
// private keys (newKey, export) warn when they use the test backend.
func keysSetup(c *cli.Context, newKey bool) (*output, *keyring.Keyring, error) {
	o, err := newOutput(c)
	if err != nil {
		return nil, nil, err
	}
	kr, err := openKeyring(c, newKey)
	if err != nil {
		return nil, nil, err
	}
	if kr.Backend() == keyring.Test && (newKey || c.Command.Name == "export") {
		o.Warn("keyring backend \"test\": private keys in %s are stored UNENCRYPTED; use it for local testnets only", kr.Dir())
	}
	return o, kr, nil
}

// oneArg returns the single positional argument of c, called what.
func oneArg(c *cli.Context, what string) (string, error) {
	switch c.NArg() {
	case 1:
		return c.Args().First(), nil
	case 0:
		return "", fmt.Errorf("missing %s: see `%s --help`", what, commandPath(c))
	}
	return "", fmt.Errorf("expected one %s, got %d arguments: see `%s --help`", what, c.NArg(), commandPath(c))
}

// keyJSON is a key in --output json.
type keyJSON struct {
	Name       string `json:"name"`
	Address    string `json:"address"`
	Scheme     string `json:"scheme"`
	PublicKey  string `json:"public_key"`
	Backend    string `json:"backend"`
	Encrypted  bool   `json:"encrypted"`
	Created    string `json:"created,omitempty"`
	File       string `json:"file"`
	PrivateKey string `json:"private_key,omitempty"`
}

func toKeyJSON(in keyring.Info) keyJSON {
	k := keyJSON{
		Name:      in.Name,
		Address:   in.Address.String(),
		Scheme:    string(in.Scheme),
		PublicKey: hex.EncodeToString(in.PublicKey.Key),
		Backend:   string(in.Backend),
		Encrypted: in.Encrypted,
		File:      in.Path,
	}
	if !in.Created.IsZero() {
		k.Created = in.Created.UTC().Format(time.RFC3339)
	}
	return k
}

func backendLabel(in keyring.Info) string {
	if in.Encrypted {
		return string(in.Backend)
	}
	return string(in.Backend) + " (unencrypted)"
}

// printKey prints one key's public description.
func printKey(o *output, in keyring.Info) error {
	return o.Emit(toKeyJSON(in), func(io.Writer) error {
		k := toKeyJSON(in)
		return o.Fields([][2]string{
			{"name", k.Name},
			{"address", k.Address},
			{"scheme", k.Scheme},
			{"public key", k.PublicKey},
			{"backend", backendLabel(in)},
			{"created", k.Created},
			{"file", k.File},
		})
	})
}
