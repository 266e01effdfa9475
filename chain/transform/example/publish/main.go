// Command publish is the client side of docs/tutorial.md: it signs an
// oracle/publish transaction (chain/transform/example) with a key of a local
// testnet's keyring, submits it and waits for its result. Any program talks
// to a PLUG chain this way: build the transform, tx.New with a registry that
// knows it, sign, client.Submit.
//
//	go run ./chain/transform/example/publish --testnet /tmp/tut --chain alpha --from carol --pair EURUSD --price 10850
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/transform/example"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/testnet"
)

func main() {
	dir := flag.String("testnet", "", "directory of a `plug testnet up` testnet (required)")
	chain := flag.String("chain", "", "chain to publish on, e.g. alpha (default: the testnet's only chain)")
	from := flag.String("from", "", "key of the testnet keyring that signs; it must be in a role allowed to call "+example.Type)
	pair := flag.String("pair", "EURUSD", "currency pair: six capital letters")
	price := flag.Uint64("price", 0, "price in ten-thousandths of the quote currency (10850 is 1.0850)")
	flag.Parse()
	if err := run(*dir, *chain, *from, *pair, *price); err != nil {
		fmt.Fprintln(os.Stderr, "publish:", err)
		os.Exit(1)
	}
}

func run(dir, chain, from, pair string, price uint64) error {
	if dir == "" || from == "" {
		return errors.New("give --testnet DIR and --from KEY (see -help)")
	}
	// The client builds the transaction with the same registry as the nodes.
	builtin.Extend(example.Register, example.AddModels)

	m, err := testnet.LoadManifest(dir)
	if err != nil {
		return err
	}
	ch, err := m.Chain(chain)
	if err != nil {
		return err
	}
	kr, err := keyring.Open(filepath.Join(dir, testnet.KeyringDir), keyring.Test, nil)
	if err != nil {
		return err
	}
	key, err := kr.Get(from)
	if err != nil {
		return fmt.Errorf("--from %s: %w", from, err)
	}
	cl, err := client.New(ch.Endpoints(), client.WithChainID(ch.ChainID))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nonce, err := cl.Nonce(ctx, key.Public().Address())
	if err != nil {
		return fmt.Errorf("reading the nonce of %s: %w", from, err)
	}
	t, err := tx.New(builtin.Registry(), ch.ChainID, &example.Publish{Pair: pair, Price: price},
		tx.Signer{Key: key.Public(), Nonce: nonce})
	if err != nil {
		return err
	}
	if err := t.Sign(key); err != nil {
		return err
	}
	res, err := cl.Submit(ctx, t, true, 30*time.Second)
	if err != nil {
		return fmt.Errorf("submitting to %s: %w (do its nodes run a plug built with the example transform?)", ch.ChainID, err)
	}
	if res.Result == nil {
		return fmt.Errorf("transaction %s is not committed after 30s: check with `plug query tx %s --testnet %s --chain %s`", res.ID, res.ID, dir, ch.ChainID)
	}
	r := res.Result
	fmt.Printf("transaction %s: %s at height %d\n", res.ID, r.Code, r.Height)
	if r.Code != exec.OK {
		return fmt.Errorf("%s refused it: %s", ch.ChainID, r.Error)
	}
	return nil
}
