package plugcli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
)

// Amounts on the command line (docs/cli.md, "Amounts"): a plain integer is in
// the asset's smallest unit, as it always was; a value with a decimal point is
// in whole units of the asset, read with the decimals the chain defines for it
// (asset.ParseAmount). Results show both: the integer and "12.34 USD".

// amountUsage is the help of an --amount flag of an asset.
const amountUsage = "; an integer is in the asset's smallest unit (1234), a value with a point in whole units (12.34, at most the asset's decimals)"

func amountFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "amount", Usage: usage + amountUsage}
}

// powerFlag is the --amount of voting power: a whole number.
func powerFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "amount", Usage: usage}
}

// maxSupplyFlag is --max-supply of a new asset: an amount of it.
func maxSupplyFlag() cli.Flag {
	return &cli.StringFlag{Name: "max-supply", Usage: "supply cap (0 or absent: none)" + amountUsage + " (its --decimals)"}
}

// maxSupply reads --max-supply of a new asset with decimals places.
func maxSupply(c *cli.Context, decimals uint8) (uint64, error) {
	if c.String("max-supply") == "" {
		return 0, nil
	}
	n, err := asset.ParseAmount(c.String("max-supply"), decimals)
	if err != nil {
		return 0, fmt.Errorf("--max-supply: %w", err)
	}
	return n, nil
}

// shownAmount is an amount of an asset as the tx commands report it.
type shownAmount struct {
	Asset   string `json:"asset"`
	Amount  uint64 `json:"amount"`
	Display string `json:"display"`
}

// needPower reads --amount as a positive whole number (voting power).
func needPower(c *cli.Context) (uint64, error) {
	raw := c.String("amount")
	if raw == "" {
		return 0, errors.New("missing --amount: give a positive whole number")
	}
	n, err := asset.ParseAmount(raw, 0)
	if err != nil {
		return 0, fmt.Errorf("--amount: %w", err)
	}
	if n == 0 {
		return 0, errors.New("--amount must be positive")
	}
	return n, nil
}

// assetDef reads the definition of asset name from cl's chain, saying what to
// check when the chain has no such asset.
func assetDef(ctx context.Context, cl *client.Client, name string) (*asset.Definition, error) {
	d, err := cl.Asset(ctx, name)
	if err != nil {
		if errors.Is(err, client.ErrUnknownAsset) {
			return nil, fmt.Errorf("%w: check --asset and --chain (a new asset is made with `plug tx create-asset`)", err)
		}
		return nil, fmt.Errorf("reading asset %q: %w", name, err)
	}
	return d, nil
}

// assetAmount reads --amount of asset name, whose definition (decimals) it
// reads from cl's chain, and records it for the command's output. The amount
// must be positive.
func (e *env) assetAmount(cl *client.Client, name string) (uint64, error) {
	raw := e.c.String("amount")
	if raw == "" {
		return 0, errors.New("missing --amount: give a positive amount: an integer in the asset's smallest unit, or whole units with a point (12.34)")
	}
	d, err := assetDef(e.ctx(), cl, name)
	if err != nil {
		return 0, err
	}
	n, err := asset.ParseAmount(raw, d.Decimals)
	if err != nil {
		return 0, fmt.Errorf("--amount: %w", err)
	}
	if n == 0 {
		return 0, errors.New("--amount must be positive")
	}
	e.shown = &shownAmount{Asset: name, Amount: n, Display: asset.Display(n, d.Decimals, name)}
	return n, nil
}

// displayer reads asset name's decimals from cl's chain once and returns a
// function writing amounts of it in whole units ("12.34 USD"), or "" when the
// chain cannot tell the decimals.
func displayer(ctx context.Context, cl *client.Client, name string) func(uint64) string {
	d, err := cl.Asset(ctx, name)
	if err != nil {
		return func(uint64) string { return "" }
	}
	return func(n uint64) string { return asset.Display(n, d.Decimals, name) }
}

// withDisplay is "1234 (12.34 USD)", or the integer alone without a display.
func withDisplay(amount uint64, display string) string {
	if display == "" {
		return fmt.Sprint(amount)
	}
	return fmt.Sprintf("%s (%d)", display, amount)
}

// named is the keyring's name for addr, "" when the keyring has none (or
// cannot be opened: names are a courtesy, never a reason to fail).
func (e *env) named(addr crypto.Address) string {
	if e.names == nil {
		e.names = map[crypto.Address]string{}
		if !e.keyringExists() {
			return "" // opening would create it
		}
		if kr, err := e.keyring(); err == nil {
			infos, _ := kr.List() // the keys it could read
			for _, in := range infos {
				e.names[in.Address] = in.Name
			}
		}
	}
	return e.names[addr]
}

// label is "alice (3f2a…91c0)" for an address the keyring names, else the
// address in short form.
func (e *env) label(addr crypto.Address) string {
	if n := e.named(addr); n != "" {
		return n + " (" + shortAddr(addr) + ")"
	}
	return shortAddr(addr)
}

// shortAddr is an address's first 8 hex digits and an ellipsis.
func shortAddr(addr crypto.Address) string { return addr.String()[:8] + "…" }

// keyringExists reports whether e's keyring directory exists.
func (e *env) keyringExists() bool {
	if e.kr != nil {
		return true
	}
	dir := e.testnetKeys
	if dir == "" || e.c.IsSet("keyring-dir") {
		var err error
		if dir, err = keyringDir(e.c); err != nil {
			return false
		}
	}
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}
