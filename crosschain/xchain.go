package crosschain

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
)

// legOf returns leg i of x after checking x's shape and that the leg is on chainID.
func legOf(x *XTx, i uint32, chainID string) (Leg, error) {
	if err := x.Check(); err != nil {
		return Leg{}, fmt.Errorf("%w: %w", transform.ErrInvalid, err)
	}
	if int(i) >= len(x.Legs) {
		return Leg{}, fmt.Errorf("%w: %w: leg %d of %d", transform.ErrInvalid, ErrMalformed, i, len(x.Legs))
	}
	l := x.Legs[i]
	if l.Chain != chainID {
		return Leg{}, fmt.Errorf("%w: %w: leg %d is on %q, this is %q", transform.ErrInvalid, ErrWrongChain, i, l.Chain, chainID)
	}
	return l, nil
}

// readLeg returns the record at key, or nil when the leg is still pending.
func readLeg(st transform.State, key string) (*LegRecord, error) {
	var r LegRecord
	found, err := st.Get(key, &r)
	if err != nil || !found {
		return nil, err
	}
	return &r, nil
}

// Prepare is phase 1 on a leg's chain: it verifies leg Leg of the signed XTx and
// either escrows its amount (debits From into "escrow/<id>/<leg>") and records
// prepared, or records refused with the reason. Both outcomes are state records
// the coordinator can be given proofs of; the transaction itself succeeds.
//
// It refuses when a party's signature is missing or invalid; when the XTx's
// reference is held on this chain by another XTx of one of its paying parties;
// when this chain's clock is past the deadline, or the deadline is further
// ahead than the chain's Params.MaxLock; when this chain has no active light
// client of a chain the XTx needs to settle here (see provers); when the asset
// is unknown; when From holds no role permitting xchain/prepare; or when From
// lacks the funds. A missing signature is recorded as a refusal only if a party
// submits the prepare; from anyone else the transaction fails with
// ErrMissingSignature and records nothing, so a relay cannot abort other
// people's trades by stripping signatures.
//
// Whatever it records, it also keeps the XTx's terms at XTxKey and, when the
// parties' signatures verify and no other XTx holds the reference, claims the
// reference for the XTx (RefKey, see recordTrade).
//
// A prepare of a leg that already has a record fails with ErrAlreadyPrepared and
// changes nothing.
type Prepare struct {
	Tx  Signed `cbor:"1,keyasint" json:"tx"`
	Leg uint32 `cbor:"2,keyasint" json:"leg"`

	xid     xtxID
	id      hash.Hash
	sigErr  error
	clients *clientMemo // set by a Batch for its steps
}

// Keys implements transform.Transform.
func (t *Prepare) Keys(ctx *transform.Context) (r, w []string) {
	x := &t.Tx.XTx
	id := t.xid.of(x)
	w = []string{LegKey(id, int(t.Leg)), EscrowKey(id, int(t.Leg))}
	if int(t.Leg) < len(x.Legs) {
		l := x.Legs[t.Leg]
		r = []string{asset.DefKey(l.Asset)}
		if l.Kind == In {
			r = append(r, asset.SupplyKey(l.Asset))
			w = append(w, MintingKey(l.Asset))
		} else {
			w = append(w, asset.BalanceKey(l.Asset, l.From))
		}
	}
	r = append(r, ParamsKey)
	for _, c := range provers(x, ctx.ChainID) {
		r = append(r, LCKey(c))
	}
	return r, append(w, tradeKeys(x, id)...)
}

// provers returns the chains whose light clients this chain needs for x to
// settle: on the coordinator, those of the other chains with legs (the
// decision rests on proofs of their records); on any other chain, the
// coordinator's (its legs finish on a proof of the decision). A malformed x
// (which Verify refuses) needs none.
func provers(x *XTx, self string) []string {
	if len(x.Legs) > MaxLegs {
		return nil
	}
	if self != x.Coordinator {
		return []string{x.Coordinator}
	}
	var out []string
	for _, l := range x.Legs {
		if l.Chain != self && !slices.Contains(out, l.Chain) {
			out = append(out, l.Chain)
		}
	}
	return out
}

// tradeKeys are the keys recordTrade may write for x: its terms and its
// parties' reference records.
func tradeKeys(x *XTx, id hash.Hash) []string {
	w := []string{XTxKey(id)}
	if x.Ref == "" || len(x.Legs) > MaxLegs {
		return w
	}
	for _, p := range x.Parties() {
		w = append(w, RefKey(p, x.Ref))
	}
	return w
}

// refHolders reads the reference records of x's paying parties on this
// chain. It returns why x may not use its reference here — a party's record
// names another XTx — or "", and the parties that hold no record of it yet.
func refHolders(st transform.State, x *XTx, id hash.Hash) (taken string, absent []crypto.Address, err error) {
	if x.Ref == "" {
		return "", nil, nil
	}
	for _, p := range x.Parties() {
		var r RefRecord
		found, err := st.Get(RefKey(p, x.Ref), &r)
		switch {
		case err != nil:
			return "", nil, err
		case !found:
			absent = append(absent, p)
		case r.ID != id:
			return fmt.Sprintf("ref %q of %s is already used by trade %s", x.Ref, p, r.ID.Short()), nil, nil
		}
	}
	return "", absent, nil
}

// recordTrade keeps x's terms at XTxKey unless they are there, and claims x's
// reference for the parties in claim. Callers claim only for an XTx whose
// parties' consent they know (their signatures verified, here or on a chain
// that prepared a leg): a reference is the party's, and anyone could otherwise
// use up another's references with XTxs it never signed.
func recordTrade(st transform.State, x *XTx, id hash.Hash, claim []crypto.Address) error {
	for _, p := range claim {
		if err := st.Set(RefKey(p, x.Ref), RefRecord{ID: id, Ref: x.Ref}); err != nil {
			return err
		}
	}
	key := XTxKey(id)
	found, err := st.Get(key, new(XTx))
	if err != nil || found {
		return err
	}
	return st.Set(key, *x)
}

// CarriedSignatures implements transform.SignatureCarrier: the parties'
// signatures over the XTx's ID, which Verify checks through crypto.VerifyCached.
func (t *Prepare) CarriedSignatures() []crypto.Item {
	return sigItems(t.xid.of(&t.Tx.XTx), t.Tx.Sigs)
}

// sigItems are the checks of the parties' signatures over an XTx's ID.
func sigItems(id hash.Hash, sigs []PartySig) []crypto.Item {
	items := make([]crypto.Item, 0, len(sigs))
	for _, ps := range sigs {
		items = append(items, crypto.Item{Pub: ps.PubKey, Msg: id[:], Sig: ps.Sig})
	}
	return items
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *Prepare) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Prepare) Verify(ctx *transform.Context, st transform.State) error {
	if _, err := legOf(&t.Tx.XTx, t.Leg, ctx.ChainID); err != nil {
		return err
	}
	t.id = t.xid.of(&t.Tx.XTx)
	rec, err := readLeg(st, LegKey(t.id, int(t.Leg)))
	if err != nil {
		return err
	}
	if rec != nil {
		return fmt.Errorf("%w: %w: leg %d of %s is %s", transform.ErrInvalid, ErrAlreadyPrepared, t.Leg, t.id.Short(), rec.Status)
	}
	t.sigErr = t.Tx.verifySigs(t.id)
	if t.sigErr != nil && !slices.ContainsFunc(ctx.Signers, t.Tx.XTx.IsParty) {
		return fmt.Errorf("%w: %w", transform.ErrUnauthorized, t.sigErr)
	}
	return nil
}

// refusal returns why the leg cannot be prepared, or "". The reference is
// checked apart (refHolders): a decide checks it before anything else.
func (t *Prepare) refusal(ctx *transform.Context, st transform.State, l Leg) (string, error) {
	x := &t.Tx.XTx
	if t.sigErr != nil {
		return t.sigErr.Error(), nil
	}
	if ctx.Time > x.Deadline {
		return fmt.Sprintf("deadline %d passed (block time %d)", x.Deadline, ctx.Time), nil
	}
	params, err := LoadParams(st)
	if err != nil {
		return "", err
	}
	if x.Deadline-ctx.Time > params.MaxLock {
		return fmt.Sprintf("deadline %d is %s after block time %d, beyond this chain's max lock of %s",
			x.Deadline, millis(x.Deadline-ctx.Time), ctx.Time, millis(params.MaxLock)), nil
	}
	for _, c := range provers(x, ctx.ChainID) {
		why, err := inactive(st, t.clients, ctx.ChainID, c)
		if err != nil {
			return "", err
		}
		if why != "" {
			if c == x.Coordinator {
				return why + ": the decision could never be proven here", nil
			}
			return why + ": the records of its legs could never be proven here", nil
		}
	}
	def, err := asset.Load(st, l.Asset)
	if err != nil {
		if errors.Is(err, transform.ErrNotFound) || errors.Is(err, transform.ErrInvalid) {
			return err.Error(), nil
		}
		return "", err
	}
	pol := ctx.Policy
	if pol == nil {
		p, err := rbac.Load(st)
		if err != nil {
			return "", err
		}
		pol = p
	}
	if err := pol.Allow(TypePrepare, []crypto.Address{l.From}); err != nil {
		if errors.Is(err, transform.ErrUnauthorized) {
			return err.Error(), nil
		}
		return "", err
	}
	if l.Kind == In {
		return mintRoom(st, def, l)
	}
	var bal uint64
	if _, err := st.Get(asset.BalanceKey(l.Asset, l.From), &bal); err != nil {
		return "", err
	}
	if bal < l.Amount {
		return fmt.Sprintf("%v: %s holds %d %s, needs %d", transform.ErrInsufficientFunds, l.From, bal, l.Asset, l.Amount), nil
	}
	return "", nil
}

// Apply implements transform.Transform.
func (t *Prepare) Apply(ctx *transform.Context, st transform.State) error {
	x := &t.Tx.XTx
	l := x.Legs[t.Leg]
	reason, absent, err := refHolders(st, x, t.id)
	if err != nil {
		return err
	}
	if reason != "" || t.sigErr != nil {
		absent = nil // held by another XTx, or no proof that the parties signed
	}
	if reason == "" {
		if reason, err = t.refusal(ctx, st, l); err != nil {
			return err
		}
	}
	if err := recordTrade(st, x, t.id, absent); err != nil {
		return err
	}
	key := LegKey(t.id, int(t.Leg))
	if reason != "" {
		return st.Set(key, LegRecord{Status: Refused, Reason: reason, Height: ctx.Height})
	}
	if l.Kind == In {
		// Nothing to escrow: the amount arrives from the Out leg's chain. Reserve
		// it against the supply cap so that the mint at finish cannot fail.
		if err := addUint(st, MintingKey(l.Asset), l.Amount, true); err != nil {
			return err
		}
		return st.Set(key, LegRecord{Status: Prepared, Height: ctx.Height})
	}
	if err := asset.Debit(st, l.Asset, l.From, l.Amount); err != nil {
		return err
	}
	if err := st.Set(EscrowKey(t.id, int(t.Leg)), Escrow{Asset: l.Asset, Amount: l.Amount}); err != nil {
		return err
	}
	return st.Set(key, LegRecord{Status: Prepared, Height: ctx.Height})
}

// mintRoom returns why the supply cap of l's asset leaves no room for the In leg l,
// counting the amounts other prepared In legs have reserved, or "".
func mintRoom(st transform.State, def asset.Definition, l Leg) (string, error) {
	var supply, minting uint64
	if _, err := st.Get(asset.SupplyKey(l.Asset), &supply); err != nil {
		return "", err
	}
	if _, err := st.Get(MintingKey(l.Asset), &minting); err != nil {
		return "", err
	}
	limit := def.Limit()
	if supply > limit || minting > limit-supply || l.Amount > limit-supply-minting {
		return fmt.Sprintf("receiving %d %s exceeds its supply cap %d on this chain (supply %d, %d arriving)", l.Amount, l.Asset, limit, supply, minting), nil
	}
	return "", nil
}

// addUint adds (up) or subtracts amount at a uint64 key, refusing to wrap.
func addUint(st transform.State, key string, amount uint64, up bool) error {
	var n uint64
	if _, err := st.Get(key, &n); err != nil {
		return err
	}
	switch {
	case up && n > math.MaxUint64-amount:
		return fmt.Errorf("%w: %s overflows", transform.ErrInvalid, key)
	case !up && n < amount:
		return fmt.Errorf("%w: %s is %d, below %d", transform.ErrInvalid, key, n, amount)
	case up:
		n += amount
	default:
		n -= amount
	}
	return st.Set(key, n)
}

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

// Finish is phase 2 on a leg's chain: given the coordinator's decision — a proof
// verified with this chain's light client of the coordinator, or the local record
// when this chain coordinates — it credits To from the escrow (commit) or refunds
// From (abort), deletes the escrow and records committed or aborted. A leg with no
// record or a refused one is simply recorded aborted (and can no longer be
// prepared). A second finish fails with ErrAlreadyFinished and changes nothing.
type Finish struct {
	XTx XTx    `cbor:"1,keyasint" json:"xtx"`
	Leg uint32 `cbor:"2,keyasint" json:"leg"`
	// Decision proves "xchain/decision/<id>" on the coordinator; nil when this chain
	// is the coordinator.
	Decision *Proof `cbor:"3,keyasint,omitempty" json:"decision,omitempty"`

	xid     xtxID
	id      hash.Hash
	dec     Decision
	rec     *LegRecord
	clients *clientMemo // set by a Batch for its steps
}

// Keys implements transform.Transform.
func (t *Finish) Keys(ctx *transform.Context) (r, w []string) {
	id := t.xid.of(&t.XTx)
	if t.XTx.Coordinator == ctx.ChainID {
		r = []string{DecisionKey(id)}
	} else {
		r = []string{LCKey(t.XTx.Coordinator)}
		if t.Decision != nil {
			r = append(r, LCRootKey(t.XTx.Coordinator, t.Decision.Height))
		}
	}
	return r, finishWrites(&t.XTx, id, int(t.Leg))
}

// finishWrites are the keys finishing leg i of x writes.
func finishWrites(x *XTx, id hash.Hash, i int) []string {
	w := []string{LegKey(id, i), EscrowKey(id, i)}
	if i < len(x.Legs) {
		l := x.Legs[i]
		switch l.Kind {
		case Out:
			w = append(w, asset.BalanceKey(l.Asset, l.From), asset.SupplyKey(l.Asset))
		case In:
			w = append(w, asset.BalanceKey(l.Asset, l.To), asset.SupplyKey(l.Asset), MintingKey(l.Asset))
		default:
			w = append(w, asset.BalanceKey(l.Asset, l.From), asset.BalanceKey(l.Asset, l.To))
		}
	}
	return w
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *Finish) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Finish) Verify(ctx *transform.Context, st transform.State) error {
	x := &t.XTx
	if _, err := legOf(x, t.Leg, ctx.ChainID); err != nil {
		return err
	}
	t.id = t.xid.of(x)
	rec, err := readLeg(st, LegKey(t.id, int(t.Leg)))
	if err != nil {
		return err
	}
	if rec != nil && (rec.Status == Committed || rec.Status == Aborted) {
		return fmt.Errorf("%w: %w: leg %d of %s is %s", transform.ErrInvalid, ErrAlreadyFinished, t.Leg, t.id.Short(), rec.Status)
	}
	t.rec = rec
	key := DecisionKey(t.id)
	if x.Coordinator == ctx.ChainID {
		if t.Decision != nil {
			return fmt.Errorf("%w: %w: this chain coordinates; the decision needs no proof", transform.ErrInvalid, ErrMalformed)
		}
		found, err := st.Get(key, &t.dec)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: %w: %s is not decided", transform.ErrInvalid, ErrNotReady, t.id.Short())
		}
	} else {
		if t.Decision == nil {
			return fmt.Errorf("%w: %w: no proof of the decision", transform.ErrInvalid, ErrMalformed)
		}
		if err := verifyRemote(st, t.clients, x.Coordinator, key, t.Decision); err != nil {
			return err
		}
		if err := encoding.Unmarshal(t.Decision.Value, &t.dec); err != nil {
			return fmt.Errorf("%w: %w: %s: %w", transform.ErrInvalid, ErrBadProof, key, err)
		}
	}
	if t.dec.Commit && (rec == nil || rec.Status != Prepared) {
		// Only a broken coordinator or light client can get here: commit needs every
		// leg proven prepared.
		return fmt.Errorf("%w: %w: commit of leg %d of %s, which this chain did not prepare", transform.ErrInvalid, ErrNotPrepared, t.Leg, t.id.Short())
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Finish) Apply(ctx *transform.Context, st transform.State) error {
	return finishLeg(st, &t.XTx, t.id, int(t.Leg), t.rec, t.dec, ctx.Height)
}

// finishLeg applies decision dec to leg i of x, whose record is rec (nil: none):
// on commit it credits To from the escrow (or mints, or burns, by kind), on
// abort it refunds From, and it records the leg committed or aborted at height.
// Finish does it on a leg's chain; Decide does it for the coordinator's own
// legs in the same transaction.
func finishLeg(st transform.State, x *XTx, id hash.Hash, i int, rec *LegRecord, dec Decision, height uint64) error {
	l := x.Legs[i]
	key := LegKey(id, i)
	out := LegRecord{Status: Aborted, Reason: dec.Reason, Height: height}
	if rec != nil && rec.Status == Refused {
		out.Reason = rec.Reason
	}
	if dec.Commit {
		out = LegRecord{Status: Committed, Height: height}
	}
	if rec != nil && rec.Status == Prepared && l.Kind == In {
		if err := addUint(st, MintingKey(l.Asset), l.Amount, false); err != nil {
			return err
		}
		if dec.Commit {
			if err := addUint(st, asset.SupplyKey(l.Asset), l.Amount, true); err != nil {
				return err
			}
			if err := asset.Credit(st, l.Asset, l.To, l.Amount); err != nil {
				return err
			}
		}
	} else if rec != nil && rec.Status == Prepared {
		ek := EscrowKey(id, i)
		var e Escrow
		found, err := st.Get(ek, &e)
		if err != nil {
			return err
		}
		if !found || e.Asset != l.Asset || e.Amount != l.Amount {
			return fmt.Errorf("%w: escrow of leg %d of %s is %+v, want %d %s", transform.ErrInvalid, i, id.Short(), e, l.Amount, l.Asset)
		}
		switch {
		case dec.Commit && l.Kind == Out:
			// The value leaves this chain: the In leg's chain mints it.
			if err := addUint(st, asset.SupplyKey(l.Asset), e.Amount, false); err != nil {
				return err
			}
		case dec.Commit:
			if err := asset.Credit(st, l.Asset, l.To, e.Amount); err != nil {
				return err
			}
		default:
			if err := asset.Credit(st, l.Asset, l.From, e.Amount); err != nil {
				return err
			}
		}
		if err := st.Delete(ek); err != nil {
			return err
		}
	}
	return st.Set(key, out)
}

// xtxID keeps an XTx's ID for one transform: a decoded transform asks for it in
// Keys, Verify and Apply, and each computation is a canonical encoding and a
// hash of the whole XTx, on every validator for every candidate block. A
// transform's XTx does not change once decoded.
type xtxID struct {
	id hash.Hash
	ok bool
}

func (m *xtxID) of(x *XTx) hash.Hash {
	if !m.ok {
		m.id, m.ok = x.ID(), true
	}
	return m.id
}
