package plugcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
)

func settleInstructCommand() *cli.Command {
	return &cli.Command{
		Name:  "instruct",
		Usage: "sign one party's own instruction for a trade, to be matched with the counterparty's",
		UsageText: "plug settle instruct --as KEY (--seller A --buyer B --delivery C:A:N --payment C:A:N | --leg FROM:TO:C:A:N ...) " +
			"--deadline-at TIME --ref REF [--coordinator CHAIN] [--out FILE]\n\n" +
			"plug settle instruct --testnet ./tn --as alice --seller alice --buyer bob --delivery alpha:EUR:100 --payment beta:USD:110 \\\n" +
			"    --deadline-at 2026-11-24T15:00:00Z --ref T-42 --out alice.json\n" +
			"plug settle instruct --keyring-dir ~/bank-b/keys --as bob --seller 3f2a…91c0 --buyer bob --delivery alpha:EUR:100 \\\n" +
			"    --payment beta:USD:110 --deadline-at 2026-11-24T15:00:00Z --ref T-42 --out bob.json",
		Description: "Each party describes the trade as it sees it and signs it with its own key; `plug settle match`\n" +
			"pairs two instructions that agree (same legs in any order, ref, coordinator and deadline) and\n" +
			"submits the trade. The counterparty is a keyring name or an address: its key is not needed.",
		Flags: xchainFlags(
			&cli.StringFlag{Name: "as", Usage: "the party giving the instruction: a keyring key"},
			&cli.StringFlag{Name: "seller", Usage: "DvP seller: key name or address"},
			&cli.StringFlag{Name: "buyer", Usage: "DvP buyer: key name or address"},
			&cli.StringFlag{Name: "delivery", Usage: "DvP delivery: CHAIN:ASSET:AMOUNT"},
			&cli.StringFlag{Name: "payment", Usage: "DvP payment: CHAIN:ASSET:AMOUNT"},
			&cli.StringSliceFlag{Name: "leg", Usage: "a leg FROM:TO:CHAIN:ASSET:AMOUNT (repeat; instead of the DvP flags)"},
			&cli.StringFlag{Name: "coordinator", Usage: "chain that decides (default: the first leg's chain in canonical order)"},
			&cli.StringFlag{Name: "deadline-at", Usage: "when the trade must have committed, RFC 3339 (both parties give the same)"},
			&cli.StringFlag{Name: "ref", Usage: "trade reference both parties give, e.g. T-42"},
			&cli.StringFlag{Name: "out", Usage: "write the signed instruction here (default: standard output)"},
		),
		Action: func(c *cli.Context) error {
			x, err := newXEnvFor(c, false)
			if err != nil {
				return err
			}
			key, _, err := x.partyKey("as", c.String("as"))
			if err != nil {
				return err
			}
			ref, err := needString(c, "ref", "the trade reference both parties use, e.g. T-42")
			if err != nil {
				return err
			}
			at, err := needString(c, "deadline-at", "the deadline both parties use, e.g. 2026-11-24T15:00:00Z")
			if err != nil {
				return err
			}
			deadline, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				return fmt.Errorf("--deadline-at %q: want RFC 3339, e.g. 2026-11-24T15:00:00Z", at)
			}
			var trade settlement.Trade
			if legs := c.StringSlice("leg"); len(legs) > 0 {
				trade.Kind = settlement.OtherKind
				for _, v := range legs {
					parts := strings.SplitN(v, ":", 3)
					if len(parts) != 3 {
						return fmt.Errorf("--leg %q: want FROM:TO:CHAIN:ASSET:AMOUNT", v)
					}
					from, _, err := x.account("leg", parts[0])
					if err != nil {
						return err
					}
					to, _, err := x.account("leg", parts[1])
					if err != nil {
						return err
					}
					spec, err := settlement.ParseLeg(parts[2])
					if err != nil {
						return fmt.Errorf("--leg %q: %w", v, err)
					}
					trade.Legs = append(trade.Legs, spec.Leg(from, to))
				}
			} else {
				seller, _, err := x.account("seller", c.String("seller"))
				if err != nil {
					return err
				}
				buyer, _, err := x.account("buyer", c.String("buyer"))
				if err != nil {
					return err
				}
				d, err := legFlag(c, "delivery", settlement.ParseLeg)
				if err != nil {
					return err
				}
				p, err := legFlag(c, "payment", settlement.ParseLeg)
				if err != nil {
					return err
				}
				trade = settlement.DvP(seller, buyer, d, p)
			}
			trade.Ref = ref
			in := settlement.Instruction{Party: key.Public().Address(), Trade: trade, Coordinator: c.String("coordinator"), Deadline: deadline.UTC()}
			si, err := settlement.Sign(in, key)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(si, "", "  ")
			if err != nil {
				return err
			}
			b = append(b, '\n')
			if out := c.String("out"); out != "" {
				if err := os.WriteFile(out, b, 0o644); err != nil {
					return err
				}
				xt, _ := in.XTx()
				id := xt.ID()
				return x.out.Emit(map[string]string{"file": out, "party": in.Party.String(), "id": id.String()}, func(w io.Writer) error {
					return x.out.Fields([][2]string{{"instruction", out}, {"party", in.Party.String()}, {"id", id.String()}})
				})
			}
			_, err = c.App.Writer.Write(b)
			return err
		},
	}
}

func settleMatchCommand() *cli.Command {
	return &cli.Command{
		Name:  "match",
		Usage: "match two parties' signed instructions and submit the trade",
		UsageText: "plug settle match A.json B.json --from KEY [--testnet DIR | --node CHAIN=URL ...] [--wait]\n\n" +
			"plug settle match alice.json bob.json --testnet ./tn --from alice --wait --output json",
		Description: "The instructions (from `plug settle instruct`) must describe the same trade; their signatures\n" +
			"become the trade's. --from submits the prepares: any account allowed to call xchain/prepare\n" +
			"(e.g. one of the parties, or an operator), since the parties' signatures are in the trade.",
		Flags: xchainFlags(
			&cli.StringFlag{Name: "from", Usage: "account that signs and submits the prepare transactions: a keyring key"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the trade is final and print it"},
			&cli.DurationFlag{Name: "timeout", Value: 90 * time.Second, Usage: "how long --wait waits"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return errors.New("give two instruction files: `plug settle match A.json B.json` (see `plug settle instruct`)")
			}
			var ins [2]settlement.SignedInstruction
			for i, f := range c.Args().Slice() {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &ins[i]); err != nil {
					return fmt.Errorf("%s: %w (want a file written by `plug settle instruct`)", f, err)
				}
			}
			x, err := newXEnv(c)
			if err != nil {
				return err
			}
			s, err := settlement.MatchSigned(ins[0], ins[1])
			if err != nil {
				return err
			}
			for _, id := range append([]string{s.XTx.Coordinator}, legChains(&s.XTx)...) {
				if x.clients[id] == nil {
					return fmt.Errorf("chain %q is not one of %v: add --node %s=URL", id, x.chainIDs(), id)
				}
			}
			if c.String("from") == "" {
				return errors.New("missing --from: name the keyring key that submits the prepares (e.g. one of the parties)")
			}
			sub, _, err := x.partyKey("from", c.String("from"))
			if err != nil {
				return err
			}
			kind := ins[0].Trade.Kind
			if err := x.checkAssets(s.XTx.Legs); err != nil {
				return err
			}
			prev, err := x.existingTrade(&s.XTx)
			if err != nil {
				return err
			}
			var opts []settlement.PrepareOption
			switch {
			case prev != nil && prev.ID != s.XTx.ID():
				// The same trade under another deadline: report that one.
				s, opts = &crosschain.Signed{XTx: prev.XTx}, append(opts, settlement.SkipLegs(func(int) bool { return true }))
			case prev != nil:
				st, err := settlement.Query(x.ctx(), &s.XTx, x.readers(), false)
				if err != nil {
					return err
				}
				opts = append(opts, settlement.SkipLegs(func(leg int) bool { return st.Decided || st.Legs[leg].Status != settlement.LegPending }))
			}
			if err := x.save(record{Kind: kind, XTx: s.XTx, Submitted: time.Now().UTC()}); err != nil {
				return fmt.Errorf("recording the trade: %w", err)
			}
			prepares, err := x.prepareBy(s, func(int, crosschain.Leg) (crypto.PrivateKey, error) { return sub, nil }, opts...)
			if err != nil {
				return err
			}
			for _, p := range prepares {
				if p.Error != "" {
					x.out.Warn("prepare of leg %d on %s: %s", p.Leg, p.Chain, p.Error)
				}
			}
			st, err := x.waitFinal(&s.XTx, c.Bool("wait"), c.Duration("timeout"))
			if err != nil {
				return err
			}
			return x.emitStatus(settleOut{Status: st, Kind: kind, Prepares: prepares, Existing: prev != nil}, abortFails, c.Bool("wait"), c.Duration("timeout"))
		},
	}
}
