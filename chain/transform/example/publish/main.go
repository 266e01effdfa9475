// Command publish is the client side of docs/tutorial.md: it signs an
// oracle/publish transaction (chain/transform/example) with a key of a
// keyring, submits it to a node's gateway and waits for its result. Any
// program talks to a PLUG chain this way: build the transform, tx.New with a
// registry that knows it, sign, client.Submit.
//
//	go run ./chain/transform/example/publish --node http://127.0.0.1:46731 --keyring /tmp/tut/keys --from carol --pair EURUSD --price 10850
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/transform/example"
	"github.com/plugchain/plug/chain/tx"
)

func main() {
	node := flag.String("node", "", "gateway URL of a node of the chain, e.g. http://127.0.0.1:26657; several, comma-separated, are tried in order (required)")
	dir := flag.String("keyring", "", "directory of an unencrypted (test) keyring, such as DIR/keys of a `plug testnet up --dir DIR` testnet (required)")
	from := flag.String("from", "", "key of the keyring that signs; it must be in a role allowed to call "+example.Type)
	pair := flag.String("pair", "EURUSD", "currency pair: six capital letters")
	price := flag.Uint64("price", 0, "price in ten-thousandths of the quote currency (10850 is 1.0850)")
	flag.Parse()
	if err := run(*node, *dir, *from, *pair, *price); err != nil {
		fmt.Fprintln(os.Stderr, "publish:", err)
		os.Exit(1)
	}
}

func run(node, dir, from, pair string, price uint64) error {
	if node == "" || dir == "" || from == "" {
		return errors.New("give --node URL, --keyring DIR and --from KEY (see -help)")
	}
	// The client builds the transaction with the same registry as the nodes.
	builtin.Extend(example.Register, example.AddModels)

	kr, err := keyring.Open(dir, keyring.Test, nil)
	if err != nil {
		return err
	}
	key, err := kr.Get(from)
	if err != nil {
		return fmt.Errorf("--from %s: %w", from, err)
	}
	cl, err := client.New(strings.Split(node, ","))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil {
		return fmt.Errorf("asking %s for its chain: %w", node, err)
	}
	chainID := st.ChainID
	nonce, err := cl.Nonce(ctx, key.Public().Address())
	if err != nil {
		return fmt.Errorf("reading the nonce of %s: %w", from, err)
	}
	t, err := tx.New(builtin.Registry(), chainID, &example.Publish{Pair: pair, Price: price},
		tx.Signer{Key: key.Public(), Nonce: nonce})
	if err != nil {
		return err
	}
	if err := t.Sign(key); err != nil {
		return err
	}
	res, err := cl.Submit(ctx, t, true, 30*time.Second)
	if err != nil {
		return fmt.Errorf("submitting to %s: %w (do its nodes run a plug built with the example transform?)", chainID, err)
	}
	if res.Result == nil {
		return fmt.Errorf("transaction %s is not committed after 30s: check with `plug query tx %s --node %s`", res.ID, res.ID, node)
	}
	r := res.Result
	fmt.Printf("transaction %s: %s at height %d\n", res.ID, r.Code, r.Height)
	if r.Code != exec.OK {
		return fmt.Errorf("%s refused it: %s", chainID, r.Error)
	}
	return nil
}
