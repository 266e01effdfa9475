package plugcli

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
)

// pendingOut is one outbox transaction in `plug tx pending --output json`.
type pendingOut struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Signer string `json:"signer"`
	// SignerName is the keyring's name for Signer, if it has one.
	SignerName string `json:"signer_name,omitempty"`
	Nonce      uint64 `json:"nonce"`
	// Status is pending, ok, failed, rejected or dropped; Reason says why it
	// was dropped or what it waits for.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	Height uint64 `json:"height,omitempty"`
}

func txPendingCommand() *cli.Command {
	return &cli.Command{
		Name:  "pending",
		Usage: "what became of the transactions this machine submitted and has no final answer for",
		UsageText: "plug tx pending [--testnet DIR [--chain C] | --node URL]\n\n" +
			"plug tx pending --testnet ./tn --chain alpha --output json",
		Description: "Follows every transaction of the chain in the outbox: committed and dropped ones are listed once and\n" +
			"leave it (dropped ones stay available to `plug tx resend`), pending ones stay, and any that no node has\n" +
			"any more is sent again with the same signed bytes.",
		Flags: clientFlags(),
		Action: clientAction(0, func(e *env) error {
			chainID, err := e.chain()
			if err != nil {
				return err
			}
			ob, err := e.outbox()
			if err != nil {
				return err
			}
			ocs, err := ob.Reconcile(e.ctx(), e.client, chainID)
			if err != nil {
				return err
			}
			out := make([]pendingOut, 0, len(ocs))
			for _, oc := range ocs {
				s := oc.Tx.Body.Signers[0]
				p := pendingOut{ID: oc.ID.String(), Type: oc.Tx.Body.Type, Signer: s.Key.Address().String(),
					SignerName: e.named(s.Key.Address()), Nonce: s.Nonce}
				var pe *client.PendingError
				var de *client.DroppedError
				switch {
				case oc.Result != nil:
					p.Status, p.Height, p.Reason = oc.Result.Code.String(), oc.Result.Height, oc.Result.Error
				case errors.As(oc.Err, &de):
					p.Status, p.Reason = gateway.TxDropped, de.Status.Reason
				case errors.As(oc.Err, &pe):
					p.Status, p.Reason = gateway.TxPending, pe.Status.Reason
				default:
					p.Status, p.Reason = "unknown", fmt.Sprint(oc.Err)
				}
				out = append(out, p)
			}
			return e.out.Emit(out, func(w io.Writer) error {
				if len(out) == 0 {
					_, err := fmt.Fprintf(w, "no transactions of %s in the outbox %s\n", chainID, ob.Dir())
					return err
				}
				var rows [][]string
				for _, p := range out {
					signer := p.Signer[:8] + "…"
					if p.SignerName != "" {
						signer = p.SignerName + " (" + signer + ")"
					}
					rows = append(rows, []string{p.ID[:12] + "…", p.Type, signer, strconv.FormatUint(p.Nonce, 10), p.Status, p.Reason})
				}
				return e.out.Table([]string{"ID", "TYPE", "SIGNER", "NONCE", "STATUS", "REASON"}, rows)
			})
		}),
	}
}

func txResendCommand() *cli.Command {
	return &cli.Command{
		Name:      "resend",
		Usage:     "sign a dropped transaction anew, with the signer's next nonce, and submit it",
		ArgsUsage: "ID",
		UsageText: "plug tx resend ID [--from KEY] [--wait]\n\n" +
			"plug tx resend 5f0c1e…c2a9 --testnet ./tn --wait",
		Description: "The transaction must be one this machine submitted (in its outbox) and that was dropped: its nonce\n" +
			"was used by another transaction, so it will never commit as signed. The same transform, payload and\n" +
			"memo are signed again by --from (default: the key of its signer in the keyring). A transaction that\n" +
			"is committed or still pending is not sent again: nothing is ever signed twice behind your back.",
		Flags: txFlags(),
		Action: func(c *cli.Context) error {
			arg, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			id, err := hash.Parse(arg)
			if err != nil {
				return fmt.Errorf("transaction ID %q: want the 64 hex digits printed by `plug tx`", arg)
			}
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			ob, err := e.outbox()
			if err != nil {
				return err
			}
			t, err := ob.GetDropped(id)
			if err != nil {
				if t, err = ob.Find(id); err != nil {
					return fmt.Errorf("%w: `plug tx resend` signs anew only transactions this machine submitted", err)
				}
			}
			res, err := e.client.Follow(e.ctx(), t)
			ob.Settle(t, res, err)
			switch {
			case err == nil:
				return fmt.Errorf("transaction %s is committed at height %d (%s): nothing to resend", id.Short(), res.Height, res.Code)
			case errors.Is(err, client.ErrPending):
				return fmt.Errorf("transaction %s is still pending (%v): it may yet commit, so it is not signed again", id.Short(), err)
			case !errors.Is(err, client.ErrDropped):
				return err
			}
			if len(t.Body.Signers) != 1 {
				return fmt.Errorf("transaction %s has %d signers: resend signs single-signer transactions only", id.Short(), len(t.Body.Signers))
			}
			if !c.IsSet("from") && !c.IsSet("node-key") {
				c.Set("from", t.Body.Signers[0].Key.Address().String())
			}
			s, err := e.signer()
			if err != nil {
				return err
			}
			if s.key.Public().Address() != t.Body.Signers[0].Key.Address() {
				return fmt.Errorf("--from is %s, the transaction's signer is %s", s.key.Public().Address(), t.Body.Signers[0].Key.Address())
			}
			tr, err := app.Registry().Decode(t.Body.Type, t.Body.Payload)
			if err != nil {
				return err
			}
			ob.Forget(t.Body.ChainID, id)
			return e.submit(s, tr, t.Body.Memo)
		},
	}
}
