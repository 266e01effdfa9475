package plugcli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/plugchain/plug/chain/keyring"
)

// passphraseEnv is the environment variable holding the keyring passphrase.
const passphraseEnv = "PLUG_PASSPHRASE"

// keyringFlags returns the flags of commands that use the keyring (keys, and
// later tx and friends).
func keyringFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  "keyring-dir",
			Usage: "directory of the keyring (default: HOME/keys, HOME being --home)",
		},
		&cli.StringFlag{
			Name:  "keyring-backend",
			Value: string(keyring.File),
			Usage: "file (private keys encrypted with a passphrase) or test (UNENCRYPTED, for local testnets only)",
		},
		&cli.StringFlag{
			Name: "passphrase-file",
			Usage: "read the keyring passphrase from this file (first line); " +
				"else $" + passphraseEnv + ", else a prompt on the terminal",
		},
	}
}

// keyringDir returns --keyring-dir, else HOME/keys.
func keyringDir(c *cli.Context) (string, error) {
	if d := c.String("keyring-dir"); d != "" {
		return d, nil
	}
	h, err := homeDir(c)
	if err != nil {
		return "", err
	}
	return filepath.Join(h, "keys"), nil
}

// openKeyring opens the keyring chosen by the flags of c. newKey says that a
// key will be written, so a passphrase typed at the prompt is asked twice.
func openKeyring(c *cli.Context, newKey bool) (*keyring.Keyring, error) {
	backend, err := keyring.ParseBackend(c.String("keyring-backend"))
	if err != nil {
		return nil, err
	}
	dir, err := keyringDir(c)
	if err != nil {
		return nil, err
	}
	return keyring.Open(dir, backend, passphraseSource(c.String("passphrase-file"), newKey))
}

// passphraseSource returns a function producing the passphrase, asked for
// at most once: from file, else $PLUG_PASSPHRASE, else from the terminal.
func passphraseSource(file string, confirm bool) func() ([]byte, error) {
	var (
		once sync.Once
		pass []byte
		err  error
	)
	return func() ([]byte, error) {
		once.Do(func() { pass, err = readPassphrase(file, confirm) })
		return bytes.Clone(pass), err
	}
}

func readPassphrase(file string, confirm bool) ([]byte, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cannot read the passphrase file: %w", err)
		}
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[:i]
		}
		data = bytes.TrimSuffix(data, []byte("\r"))
		if len(data) == 0 {
			return nil, fmt.Errorf("%w: the passphrase file %s is empty", keyring.ErrNoPassphrase, file)
		}
		return data, nil
	}
	if p, ok := os.LookupEnv(passphraseEnv); ok {
		if p == "" {
			return nil, fmt.Errorf("%w: $%s is set but empty", keyring.ErrNoPassphrase, passphraseEnv)
		}
		return []byte(p), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("%w: the file keyring needs a passphrase and there is no terminal to ask for it: "+
			"set %s, pass --passphrase-file FILE, or use --keyring-backend test for a local testnet",
			keyring.ErrNoPassphrase, passphraseEnv)
	}
	p, err := prompt(fd, "Keyring passphrase: ")
	if err != nil {
		return nil, err
	}
	if confirm {
		if len(p) < keyring.MinPassphraseLen {
			return nil, fmt.Errorf("%w: use at least %d characters", keyring.ErrWeakPassphrase, keyring.MinPassphraseLen)
		}
		again, err := prompt(fd, "Repeat passphrase: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the passphrases do not match: try again")
		}
	}
	return p, nil
}

func prompt(fd int, msg string) ([]byte, error) {
	fmt.Fprint(os.Stderr, msg)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return p, nil
}
