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
