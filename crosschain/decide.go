package crosschain

import (
	"fmt"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
)

// Decide is the coordinator's step: it records the one decision of XTx at
// "xchain/decision/<id>". It reads the legs' records — from Proofs, verified with
// this chain's light client of the leg's chain, or from local state for legs on
// this chain — and records abort if a leg is refused or if this chain's block time
// is past the Deadline (no proofs needed), commit if every leg is prepared, and
// fails with ErrNotReady otherwise. Every proof carried must verify, or the
// transaction fails. A second decide fails with ErrAlreadyDecided and changes
// nothing.
//
// The same transaction finishes the legs on this chain, as Finish would with the
// decision: the coordinator needs no proof of its own decision, and a trade
// costs one transaction less (a Finish of such a leg afterwards fails with
// ErrAlreadyFinished).
//
// The decision does not depend on the parties' signatures (each leg's chain checked
// them when it prepared), so the envelope carries the bare XTx.
//
// With Sigs (every party's signature over the XTx, as in Signed), the decide also
// prepares this chain's own legs that no one prepared yet, in the same
// transaction: it checks them as Prepare would (the signatures, the deadline, the
// asset, the payer's role and funds, counted together for legs of one payer), and
// then either commits them at once — the coordinator's own vote needs no
// separate record, as the "last agent" of classic two-phase commit — or records
// the abort with the refusal's reason. A DvP then costs three chain transactions,
// not four. In legs (a mint against the supply cap) are not prepared this way:
// they need their own Prepare.
//
// Before anything else, a decide checks the XTx's reference as Prepare does:
// when another XTx holds it on this chain for one of the paying parties, the
// decision is abort. Every decide keeps the XTx's terms at XTxKey and, when it
// knows the parties signed (a leg is prepared, or Sigs verify), claims the
// reference: so at most one XTx per party and reference ever commits on a
// coordinator.
type Decide struct {
	XTx    XTx        `cbor:"1,keyasint" json:"xtx"`
	Proofs []LegProof `cbor:"2,keyasint" json:"proofs"`
	// Sigs, when present, lets the decide prepare this chain's unprepared legs.
	Sigs []PartySig `cbor:"3,keyasint,omitempty" json:"sigs,omitempty"`

	xid      xtxID
	decision Decision
	local    map[int]*LegRecord // this chain's legs and their records, for Apply
	inline   []int              // this chain's legs the decide prepares itself
	claim    []crypto.Address   // parties whose reference the decide claims
	clients  *clientMemo        // set by a Batch for its steps
}

// inlineLeg reports whether leg i can be prepared by a decide carrying Sigs.
func (t *Decide) inlineLeg(i int) bool {
	return len(t.Sigs) > 0 && t.XTx.Legs[i].Chain == t.XTx.Coordinator && t.XTx.Legs[i].Kind != In
}

// CarriedSignatures implements transform.SignatureCarrier: the parties'
// signatures, when the decide carries them.
func (t *Decide) CarriedSignatures() []crypto.Item {
	if len(t.Sigs) == 0 {
		return nil
	}
	return sigItems(t.xid.of(&t.XTx), t.Sigs)
}

// Keys implements transform.Transform: the client of every remote leg's chain, the
// record of every local leg, the decision, the XTx's terms and references.
func (t *Decide) Keys(ctx *transform.Context) (r, w []string) {
	id := t.xid.of(&t.XTx)
	seen := map[string]bool{}
	w = append([]string{DecisionKey(id)}, tradeKeys(&t.XTx, id)...)
	for i, l := range t.XTx.Legs {
		if l.Chain == t.XTx.Coordinator {
			w = append(w, finishWrites(&t.XTx, id, i)...)
			if t.inlineLeg(i) {
				r = append(r, asset.DefKey(l.Asset))
				if !seen[ParamsKey] {
					seen[ParamsKey] = true
					r = append(r, ParamsKey)
				}
			}
			continue
		}
		if k := LCKey(l.Chain); !seen[k] {
			seen[k] = true
			r = append(r, k)
		}
	}
	for _, p := range t.Proofs {
		if int(p.Leg) < len(t.XTx.Legs) && t.XTx.Legs[p.Leg].Chain != t.XTx.Coordinator {
			if k := LCRootKey(t.XTx.Legs[p.Leg].Chain, p.Proof.Height); !seen[k] {
				seen[k] = true
				r = append(r, k)
			}
		}
	}
	return r, dedupe(w)
}

// dedupe drops repeated keys, keeping the first of each: two local legs of one
// asset and party write the same balance.
func dedupe(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := keys[:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *Decide) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Decide) Verify(ctx *transform.Context, st transform.State) error {
	x := &t.XTx
	if err := x.Check(); err != nil {
		return fmt.Errorf("%w: %w", transform.ErrInvalid, err)
	}
	if x.Coordinator != ctx.ChainID {
		return fmt.Errorf("%w: %w: coordinator is %q, this is %q", transform.ErrInvalid, ErrWrongChain, x.Coordinator, ctx.ChainID)
	}
	id := t.xid.of(x)
	var prev Decision
	found, err := st.Get(DecisionKey(id), &prev)
	if err != nil {
		return err
	}
	if found {
		return fmt.Errorf("%w: %w: %s at height %d (commit=%t)", transform.ErrInvalid, ErrAlreadyDecided, id.Short(), prev.Height, prev.Commit)
	}
	t.decision = Decision{Height: ctx.Height, Time: ctx.Time}
	status := make([]*LegRecord, len(x.Legs))
	t.local = map[int]*LegRecord{}
	t.inline, t.claim = nil, nil
	for i, l := range x.Legs {
		if l.Chain == x.Coordinator {
			if status[i], err = readLeg(st, LegKey(id, i)); err != nil {
				return err
			}
			t.local[i] = status[i]
		}
	}
	// Proofs are checked before anything is decided, even an abort that
	// needs none: a decide carrying a forged proof changes nothing.
	if err := t.verifyProofs(st, id, status); err != nil {
		return err
	}
	taken, absent, err := refHolders(st, x, id)
	if err != nil {
		return err
	}
	if taken != "" {
		t.decision.Reason = taken
		return nil
	}
	if err := t.judge(ctx, st, id, status); err != nil {
		return err
	}
	if len(absent) > 0 && t.consented(id, status) {
		t.claim = absent
	}
	return nil
}

// consented reports whether the decide knows that every party signed the XTx:
// a leg is prepared (the chain that prepared it, or this decide, verified the
// signatures), or the decide carries signatures that verify.
func (t *Decide) consented(id hash.Hash, status []*LegRecord) bool {
	for _, r := range status {
		if r != nil && r.Status == Prepared {
			return true
		}
	}
	if len(t.Sigs) == 0 {
		return false
	}
	sg := Signed{XTx: t.XTx, Sigs: t.Sigs}
	return sg.verifySigs(id) == nil
}

// verifyProofs checks the proofs of the other chains' legs against this
// chain's light clients and puts their records in status.
func (t *Decide) verifyProofs(st transform.State, id hash.Hash, status []*LegRecord) error {
	x := &t.XTx
	for _, p := range t.Proofs {
		i := int(p.Leg)
		switch {
		case i >= len(x.Legs):
			return fmt.Errorf("%w: %w: proof of leg %d of %d", transform.ErrInvalid, ErrMalformed, i, len(x.Legs))
		case x.Legs[i].Chain == x.Coordinator:
			return fmt.Errorf("%w: %w: leg %d is on this chain and needs no proof", transform.ErrInvalid, ErrMalformed, i)
		case status[i] != nil:
			return fmt.Errorf("%w: %w: two proofs of leg %d", transform.ErrInvalid, ErrMalformed, i)
		}
		key := LegKey(id, i)
		if err := verifyRemote(st, t.clients, x.Legs[i].Chain, key, &p.Proof); err != nil {
			return err
		}
		var rec LegRecord
		if err := encoding.Unmarshal(p.Proof.Value, &rec); err != nil {
			return fmt.Errorf("%w: %w: %s: %w", transform.ErrInvalid, ErrBadProof, key, err)
		}
		status[i] = &rec
	}
	return nil
}

// judge sets the decision from the legs' records: those of this chain's legs
// in status, those of the others from the proofs, this chain's unprepared
// legs prepared inline when the decide carries signatures. It fails with
// ErrNotReady when nothing can be decided yet.
func (t *Decide) judge(ctx *transform.Context, st transform.State, id hash.Hash, status []*LegRecord) error {
	x := &t.XTx
	if len(t.Sigs) > 0 && ctx.Time <= x.Deadline { // past it, the abort needs no consent
		reason, err := t.prepareLocal(ctx, st, id, status)
		if err != nil {
			return err
		}
		if reason != "" {
			t.decision.Reason = reason
			return nil
		}
	}
	all := true
	for i, r := range status {
		switch {
		case r == nil:
			all = false
		case r.Status == Refused:
			t.decision.Reason = fmt.Sprintf("leg %d on %s refused: %s", i, x.Legs[i].Chain, r.Reason)
			return nil
		case r.Status != Prepared:
			return fmt.Errorf("%w: leg %d is %s before any decision", transform.ErrInvalid, i, r.Status)
		}
	}
	if ctx.Time > x.Deadline {
		t.decision.Reason = fmt.Sprintf("deadline %d passed (coordinator time %d)", x.Deadline, ctx.Time)
		return nil
	}
	if !all {
		return fmt.Errorf("%w: %w: %s: not every leg is proven prepared", transform.ErrInvalid, ErrNotReady, id.Short())
	}
	t.decision.Commit = true
	return nil
}

// prepareLocal checks the legs of this chain that no one prepared and that the
// decide may prepare itself (see Decide). It marks them prepared in status and
// returns "", or returns why one is refused. Bad signatures fail the
// transaction: a relay that cannot show the parties' consent may not move their
// assets, and an honest one sends what a party signed.
func (t *Decide) prepareLocal(ctx *transform.Context, st transform.State, id hash.Hash, status []*LegRecord) (string, error) {
	x := &t.XTx
	var legs []int
	for i := range x.Legs {
		if status[i] == nil && t.inlineLeg(i) {
			legs = append(legs, i)
		}
	}
	if len(legs) == 0 {
		return "", nil
	}
	sg := Signed{XTx: *x, Sigs: t.Sigs}
	if err := sg.verifySigs(id); err != nil {
		return "", fmt.Errorf("%w: %w", transform.ErrUnauthorized, err)
	}
	// One payer's legs are checked against its balance together: each alone
	// might fit where all of them do not.
	need := map[string]uint64{}
	for _, i := range legs {
		l := x.Legs[i]
		p := Prepare{Tx: sg, Leg: uint32(i), clients: t.clients}
		reason, err := p.refusal(ctx, st, l)
		if err != nil {
			return "", err
		}
		k := asset.BalanceKey(l.Asset, l.From)
		if reason == "" {
			var bal uint64
			if _, err := st.Get(k, &bal); err != nil {
				return "", err
			}
			if need[k] += l.Amount; need[k] < l.Amount || need[k] > bal {
				reason = fmt.Sprintf("%v: %s holds %d %s, needs %d for this trade's legs", transform.ErrInsufficientFunds, l.From, bal, l.Asset, need[k])
			}
		}
		if reason != "" {
			return fmt.Sprintf("leg %d on %s refused: %s", i, l.Chain, reason), nil
		}
		status[i] = &LegRecord{Status: Prepared, Height: ctx.Height}
	}
	t.inline = legs
	return "", nil
}

// Apply implements transform.Transform: the decision, then this chain's legs
// finished by it (after the decide prepared those it prepares itself).
func (t *Decide) Apply(ctx *transform.Context, st transform.State) error {
	id := t.xid.of(&t.XTx)
	if err := st.Set(DecisionKey(id), t.decision); err != nil {
		return err
	}
	if err := recordTrade(st, &t.XTx, id, t.claim); err != nil {
		return err
	}
	if t.decision.Commit {
		for _, i := range t.inline {
			// As Prepare.Apply would: debit into escrow, then finishLeg moves
			// the escrow on. One code path for the assets, whichever way a leg
			// was prepared.
			l := t.XTx.Legs[i]
			if err := asset.Debit(st, l.Asset, l.From, l.Amount); err != nil {
				return fmt.Errorf("prepare leg %d: %w", i, err)
			}
			if err := st.Set(EscrowKey(id, i), Escrow{Asset: l.Asset, Amount: l.Amount}); err != nil {
				return fmt.Errorf("prepare leg %d: %w", i, err)
			}
			t.local[i] = &LegRecord{Status: Prepared, Height: ctx.Height}
		}
	}
	for i := range t.XTx.Legs {
		if rec, ok := t.local[i]; ok {
			if err := finishLeg(st, &t.XTx, id, i, rec, t.decision, ctx.Height); err != nil {
				return fmt.Errorf("finish leg %d: %w", i, err)
			}
		}
	}
	return nil
}
