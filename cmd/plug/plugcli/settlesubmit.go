package plugcli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
)

// How a settle command submits a trade: check the assets, find a trade
// already under its reference, send the missing prepares, and wait for
// the outcome with --wait.

// prepareOut is a submitted xchain/prepare.
type prepareOut = settlement.PrepareResult

// settleOut is a trade in --output json.
type settleOut struct {
	*settlement.Status
	Kind     settlement.Kind `json:"kind,omitempty"`
	Prepares []prepareOut    `json:"prepares,omitempty"`
	// Existing: a trade under this reference was already on the chains; it
	// was reported (and its missing prepares sent), not submitted again.
	Existing bool `json:"existing,omitempty"`
	// Found says where a status command found the trade.
	Found *foundTrade `json:"found,omitempty"`
}

// Whether emitStatus treats an aborted trade as a failure of the command.
const (
	// abortFails: a command that settles a trade failed when it aborted.
	abortFails = true
	// statusReport: a command that reports a trade worked whatever the
	// trade's state.
	statusReport = false
)

// tradeAction builds, signs and submits a trade, then waits for it with --wait.
func tradeAction(c *cli.Context, build func(*xenv) (settlement.Trade, []crypto.PrivateKey, error)) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: settle commands take flags only (see `%s --help`)", c.Args().First(), commandPath(c))
	}
	x, err := newXEnv(c)
	if err != nil {
		return err
	}
	trade, keys, err := build(x)
	if err != nil {
		return err
	}
	trade.Ref = c.String("ref")
	if trade.Ref == "" {
		trade.Ref = newRef()
		x.out.Warn("no --ref given: this trade's reference is %s (run again with --ref %s to follow it without submitting it twice)", trade.Ref, trade.Ref)
	}
	if err := x.checkAssets(trade.Legs); err != nil {
		return err
	}
	var opts []settlement.PrepareOption
	if c.Bool("no-coordinator-prepare") {
		opts = append(opts, settlement.LeaveCoordinatorLegs())
	}
	if c.Duration("deadline") <= 0 {
		return errors.New("--deadline must be positive, e.g. 30s")
	}
	xt, err := trade.XTx(c.String("coordinator"), time.Now().Add(c.Duration("deadline")))
	if err != nil {
		return err
	}
	prev, err := x.existingTrade(&xt)
	if err != nil {
		return err
	}
	existing := prev != nil
	var prepares []prepareOut
	if existing {
		xt = prev.XTx
		if prepares, err = x.resume(&xt, keys, opts...); err != nil {
			return err
		}
	} else if xt, prepares, err = x.submitTrade(trade, keys, c.String("coordinator"), c.Duration("deadline"), opts...); err != nil {
		return err
	}
	st, err := x.waitFinal(&xt, c.Bool("wait"), c.Duration("timeout"))
	if err != nil {
		return err
	}
	return x.emitStatus(settleOut{Status: st, Kind: trade.Kind, Prepares: prepares, Existing: existing}, abortFails, c.Bool("wait"), c.Duration("timeout"))
}

// newRef returns a fresh trade reference.
func newRef() string {
	var b [6]byte
	rand.Read(b[:])
	return "T-" + hex.EncodeToString(b[:])
}

// checkAssets refuses, before anything is signed, a leg whose chain does not
// define its asset.
func (x *xenv) checkAssets(legs []crosschain.Leg) error {
	for i, l := range legs {
		cl := x.clients[l.Chain]
		if cl == nil {
			continue // reported with the chains of the trade
		}
		if err := checkAsset(x.ctx(), cl, l.Asset); err != nil {
			return fmt.Errorf("leg %d: %w", i, err)
		}
	}
	return nil
}

// existingTrade looks up xt's reference for each of its paying parties on its
// chains (the coordinator first) and returns the trade found, when it has
// the same terms as xt (its deadline aside), or nil when the reference is
// unused. A trade with other terms under the reference is an error: the
// chains would refuse or abort the new one.
func (x *xenv) existingTrade(xt *crosschain.XTx) (*settlement.RefTrade, error) {
	if xt.Ref == "" {
		return nil, nil
	}
	order := []string{xt.Coordinator}
	for _, c := range legChains(xt) {
		if c != xt.Coordinator && x.clients[c] != nil {
			order = append(order, c)
		}
	}
	if x.clients[xt.Coordinator] == nil {
		return nil, nil // reported when it is submitted
	}
	for _, p := range xt.Parties() {
		prev, err := settlement.LookupRef(x.ctx(), x.readers(), order, p, xt.Ref, false)
		if errors.Is(err, settlement.ErrRefNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("looking up reference %q: %w", xt.Ref, err)
		}
		if !settlement.SameTerms(&prev.XTx, xt) {
			return nil, fmt.Errorf("reference %q of %s is already used by trade %s with other terms (%s, coordinator %s): "+
				"give this trade another --ref, or follow that one with `plug settle status %s`",
				xt.Ref, p, prev.ID, settlement.DescribeLegs(prev.XTx.Legs), prev.XTx.Coordinator, prev.ID)
		}
		x.out.Warn("trade %s is already on the chains under reference %q: reporting it, not submitting it again", prev.ID.String()[:12], xt.Ref)
		return prev, nil
	}
	return nil, nil
}

// resume sends the prepares a trade found under its reference still lacks —
// an earlier run may have stopped half way — unless its deadline passed (the
// coordinator then aborts it, and a prepare would only be refused).
func (x *xenv) resume(xt *crosschain.XTx, keys []crypto.PrivateKey, opts ...settlement.PrepareOption) ([]prepareOut, error) {
	if err := x.save(record{XTx: *xt, Submitted: time.Now().UTC()}); err != nil {
		return nil, fmt.Errorf("recording the trade: %w", err)
	}
	st, err := settlement.Query(x.ctx(), xt, x.readers(), false)
	if err != nil {
		return nil, err
	}
	var missing []int
	for _, l := range st.Legs {
		if l.Status == settlement.LegPending {
			missing = append(missing, l.Leg)
		}
	}
	if st.Decided || len(missing) == 0 || time.Now().UnixMilli() > xt.Deadline {
		return nil, nil
	}
	signed, err := crosschain.NewSigned(*xt, keys...)
	if err != nil {
		return nil, err
	}
	if err := signed.VerifySigs(); err != nil {
		return nil, fmt.Errorf("%w: every party that pays must be given as a key", err)
	}
	opts = append(opts, settlement.SkipLegs(func(leg int) bool { return !slices.Contains(missing, leg) }))
	return x.prepare(signed, keys, opts...)
}

// submitTrade signs trade with keys (a random Ref when it has none), records it
// in the store and submits xchain/prepare of every leg, warning of prepares
// that failed. The coordinator may commit it until deadline from now.
func (x *xenv) submitTrade(trade settlement.Trade, keys []crypto.PrivateKey, coordinator string, deadline time.Duration, opts ...settlement.PrepareOption) (crosschain.XTx, []prepareOut, error) {
	if trade.Ref == "" {
		trade.Ref = newRef()
	}
	if deadline <= 0 {
		return crosschain.XTx{}, nil, errors.New("--deadline must be positive, e.g. 30s")
	}
	xt, err := trade.XTx(coordinator, time.Now().Add(deadline))
	if err != nil {
		return xt, nil, err
	}
	for _, id := range append([]string{xt.Coordinator}, legChains(&xt)...) {
		if x.clients[id] == nil {
			return xt, nil, fmt.Errorf("chain %q is not one of %v: check the legs and --coordinator, or add --node %s=URL", id, x.chainIDs(), id)
		}
	}
	signed, err := crosschain.NewSigned(xt, keys...)
	if err != nil {
		return xt, nil, err
	}
	if err := signed.VerifySigs(); err != nil {
		return xt, nil, fmt.Errorf("%w: every party that pays must be given as a key", err)
	}
	if err := x.save(record{Kind: trade.Kind, XTx: xt, Submitted: time.Now().UTC()}); err != nil {
		return xt, nil, fmt.Errorf("recording the trade: %w", err)
	}
	prepares, err := x.prepare(signed, keys, opts...)
	if err != nil {
		return xt, nil, err
	}
	for _, p := range prepares {
		if p.Error != "" {
			x.out.Warn("prepare of leg %d on %s: %s", p.Leg, p.Chain, p.Error)
		}
	}
	return xt, prepares, nil
}

func legChains(x *crosschain.XTx) []string {
	var out []string
	for _, l := range x.Legs {
		if !slices.Contains(out, l.Chain) {
			out = append(out, l.Chain)
		}
	}
	return out
}

// prepare submits xchain/prepare of every leg, signed by the leg's payer, and
// waits for each to be committed.
func (x *xenv) prepare(s *crosschain.Signed, keys []crypto.PrivateKey, opts ...settlement.PrepareOption) ([]prepareOut, error) {
	return x.prepareBy(s, func(i int, l crosschain.Leg) (crypto.PrivateKey, error) {
		ki := slices.IndexFunc(keys, func(k crypto.PrivateKey) bool { return k.Public().Address() == l.From })
		if ki < 0 {
			return nil, fmt.Errorf("leg %d is paid by %s, whose key was not given", i, l.From)
		}
		return keys[ki], nil
	}, opts...)
}

// prepareBy is prepare with the submitter of each leg's prepare chosen by keyFor.
func (x *xenv) prepareBy(s *crosschain.Signed, keyFor func(int, crosschain.Leg) (crypto.PrivateKey, error), opts ...settlement.PrepareOption) ([]prepareOut, error) {
	return settlement.Prepare(x.ctx(), xchainRegistry(), s, x.clients, keyFor, settlement.PrepareTimeout, opts...)
}

// waitFinal reads the trade's status, and with wait polls until it is final or
// timeout passes.
func (x *xenv) waitFinal(xt *crosschain.XTx, wait bool, timeout time.Duration) (*settlement.Status, error) {
	if !wait {
		timeout = 0
	}
	var st *settlement.Status
	err := waitBar(x.out, "waiting for the trade to be final", func() error {
		var err error
		st, err = settlement.WaitFinal(x.ctx(), xt, x.readers(), timeout, 250*time.Millisecond)
		return err
	})
	return st, err
}

// emitStatus prints a trade's status; the error says when it aborted or, with
// wait, is not final.
func (x *xenv) emitStatus(o settleOut, abortIsError, wait bool, timeout time.Duration) error {
	st := o.Status
	err := x.out.Emit(o, func(w io.Writer) error {
		pairs := [][2]string{{"id", st.ID}, {"status", string(st.State)}, {"final", strconv.FormatBool(st.Final)},
			{"coordinator", st.Coordinator}, {"deadline", crosschain.FormatMillis(st.Deadline)}}
		if st.Ref != "" {
			pairs = append(pairs, [2]string{"ref", st.Ref})
		}
		if st.Decided {
			d := "height " + strconv.FormatUint(st.DecisionHeight, 10)
			if st.DecidedAtTime != "" {
				d += ", " + st.DecidedAtTime
			}
			pairs = append(pairs, [2]string{"decided", d})
		}
		if f := o.Found; f != nil {
			src := f.Source
			switch {
			case f.Source == "chain" && f.Verified:
				src = "chain " + f.FoundOn + " (terms proven)"
			case f.Source == "chain":
				src = "chain " + f.FoundOn
			case f.Source == "store":
				src = "this machine's trade store (on no chain yet)"
			}
			pairs = append(pairs, [2]string{"found on", src})
		}
		if o.Existing {
			pairs = append(pairs, [2]string{"note", "already on the chains under this reference: reported, not submitted again"})
		}
		if st.Reason != "" {
			pairs = append(pairs, [2]string{"reason", st.Reason})
		}
		if err := x.out.Fields(pairs); err != nil {
			return err
		}
		fmt.Fprintln(w)
		var rows [][]string
		for _, l := range st.Legs {
			h := ""
			if l.Height > 0 {
				h = strconv.FormatUint(l.Height, 10)
			}
			v := ""
			if l.Verified {
				v = "yes"
			}
			rows = append(rows, []string{strconv.Itoa(l.Leg), l.Chain, l.Asset, strconv.FormatUint(l.Amount, 10),
				l.From.String()[:8] + "…", l.To.String()[:8] + "…", l.Status, h, v, l.Reason})
		}
		return x.out.Table([]string{"LEG", "CHAIN", "ASSET", "AMOUNT", "FROM", "TO", "STATUS", "HEIGHT", "PROVEN", "REASON"}, rows)
	})
	if err != nil {
		return err
	}
	switch {
	case abortIsError && st.State == settlement.Aborted:
		return reportedError{fmt.Errorf("trade %s aborted: %s", st.ID[:12], st.Reason)}
	case wait && !st.Final:
		return reportedError{fmt.Errorf("trade %s is not final after %s (status %s): relays carry the proofs between chains — "+
			"start one with `plug relay start --config relay.toml` (see `plug relay status`), then follow it with `plug settle status %s`",
			st.ID[:12], timeout, st.State, st.ID)}
	}
	return nil
}
