package settlement

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain"
)

// ErrInvalid: a trade, leg or instruction of the wrong shape.
var ErrInvalid = errors.New("invalid trade")

// ErrNoMatch: two instructions do not describe the same trade.
var ErrNoMatch = errors.New("instructions do not match")

// Kind names the shape of a trade.
type Kind string

// Trade kinds.
const (
	DvPKind   Kind = "dvp"   // delivery of an asset against payment
	PvPKind   Kind = "pvp"   // one currency against another
	BatchKind Kind = "batch" // net transfers of a batch of trades
	OtherKind Kind = "trade" // any other set of legs
	// TransferKind is a cross-shard transfer of a sharded network (an Out leg and
	// its In leg, see crosschain.Out).
	TransferKind Kind = "transfer"
)

// LegSpec is the part of a leg a trader names on the command line: how much of
// which asset on which chain.
type LegSpec struct {
	Chain  string `json:"chain"`
	Asset  string `json:"asset"`
	Amount uint64 `json:"amount"`
}

// String returns "CHAIN:ASSET:AMOUNT".
func (s LegSpec) String() string {
	return s.Chain + ":" + s.Asset + ":" + strconv.FormatUint(s.Amount, 10)
}

// ParseLeg parses "CHAIN:ASSET:AMOUNT", e.g. "alpha:USD:100".
func ParseLeg(s string) (LegSpec, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return LegSpec{}, fmt.Errorf("%w: leg %q: want CHAIN:ASSET:AMOUNT, e.g. alpha:USD:100", ErrInvalid, s)
	}
	spec := LegSpec{Chain: strings.TrimSpace(parts[0]), Asset: strings.TrimSpace(parts[1])}
	if err := crosschain.CheckChainID(spec.Chain); err != nil {
		return LegSpec{}, fmt.Errorf("%w: leg %q: %v", ErrInvalid, s, err)
	}
	if err := asset.CheckName(spec.Asset); err != nil {
		return LegSpec{}, fmt.Errorf("%w: leg %q: %v", ErrInvalid, s, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(parts[2]), 10, 64)
	if err != nil || n == 0 {
		return LegSpec{}, fmt.Errorf("%w: leg %q: amount must be a positive whole number", ErrInvalid, s)
	}
	spec.Amount = n
	return spec, nil
}

// Leg returns the transfer of s from from to to.
func (s LegSpec) Leg(from, to crypto.Address) crosschain.Leg {
	return crosschain.Leg{Chain: s.Chain, Asset: s.Asset, From: from, To: to, Amount: s.Amount}
}

// Trade is a set of transfers that settle together or not at all.
type Trade struct {
	Kind Kind             `json:"kind"`
	Legs []crosschain.Leg `json:"legs"`
	// Ref is the trade's reference (crosschain.CheckRef): it becomes the XTx's
	// Ref, and its nonce is derived from it. The chains let one XTx per paying
	// party and reference settle, so a trade submitted twice under one
	// reference settles at most once.
	Ref string `json:"ref,omitempty"`
}

// DvP is the delivery of delivery from seller to buyer against payment from buyer
// to seller.
func DvP(seller, buyer crypto.Address, delivery, payment LegSpec) Trade {
	return Trade{Kind: DvPKind, Legs: []crosschain.Leg{delivery.Leg(seller, buyer), payment.Leg(buyer, seller)}}
}

// PvP is leg1 paid by a to b against leg2 paid by b to a.
func PvP(a, b crypto.Address, leg1, leg2 LegSpec) Trade {
	return Trade{Kind: PvPKind, Legs: []crosschain.Leg{leg1.Leg(a, b), leg2.Leg(b, a)}}
}

// Parties returns every address that sends or receives in t, in first-seen order.
func (t Trade) Parties() []crypto.Address {
	var out []crypto.Address
	seen := map[crypto.Address]bool{}
	for _, l := range t.Legs {
		for _, a := range []crypto.Address{l.From, l.To} {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// Check checks the trade's shape: 1..crosschain.MaxLegs well-formed legs and
// a valid reference.
func (t Trade) Check() error {
	x := crosschain.XTx{Legs: t.Legs, Coordinator: "check", Deadline: 1, Ref: t.Ref}
	if err := x.Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// XTx returns the crosschain transaction settling t: coordinated by coordinator
// (the first leg's chain when empty), which may commit until deadline on its
// clock, with t's Ref. The nonce is derived from Ref, so the same trade,
// coordinator and deadline always give the same XTx ID.
func (t Trade) XTx(coordinator string, deadline time.Time) (crosschain.XTx, error) {
	if err := t.Check(); err != nil {
		return crosschain.XTx{}, err
	}
	if coordinator == "" {
		coordinator = t.Legs[0].Chain
	}
	if deadline.IsZero() {
		return crosschain.XTx{}, fmt.Errorf("%w: no deadline", ErrInvalid)
	}
	x := crosschain.XTx{
		Legs:        slices.Clone(t.Legs),
		Coordinator: coordinator,
		Deadline:    deadline.UnixMilli(),
		Nonce:       refNonce(t.Ref),
		Ref:         t.Ref,
	}
	if err := x.Check(); err != nil {
		return crosschain.XTx{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return x, nil
}

// refNonce derives an XTx nonce from a trade reference.
func refNonce(ref string) uint64 {
	if ref == "" {
		return 0
	}
	h := sha256.Sum256([]byte("plug/settlement-ref\x00" + ref))
	return binary.BigEndian.Uint64(h[:8])
}

// Instruction is one party's own description of a trade, submitted separately
// from its counterparty's. Two instructions Match when they describe the same
// legs, reference, coordinator and deadline.
type Instruction struct {
	// Party is who gives the instruction; it must send or receive in Trade.
	Party crypto.Address `json:"party"`
	Trade Trade          `json:"trade"`
	// Coordinator is the deciding chain; empty accepts the counterparty's choice
	// (or the first leg's chain).
	Coordinator string `json:"coordinator,omitempty"`
	// Deadline is when the trade must have committed; zero accepts the
	// counterparty's.
	Deadline time.Time `json:"deadline,omitzero"`
}

// Match pairs the instructions of two different parties describing the same
// trade and returns the XTx both are to sign. Legs may be listed in any order:
// the XTx lists them in a canonical order, so both sides compute the same ID.
// Every party of the trade must be one of the two.
func Match(a, b Instruction) (crosschain.XTx, error) {
	if a.Party == b.Party {
		return crosschain.XTx{}, fmt.Errorf("%w: both instructions are from %s", ErrNoMatch, a.Party)
	}
	for _, in := range []Instruction{a, b} {
		if err := in.Trade.Check(); err != nil {
			return crosschain.XTx{}, fmt.Errorf("instruction of %s: %w", in.Party, err)
		}
		if !slices.Contains(in.Trade.Parties(), in.Party) {
			return crosschain.XTx{}, fmt.Errorf("%w: %s gives an instruction for a trade it is not part of", ErrInvalid, in.Party)
		}
	}
	if a.Trade.Ref != b.Trade.Ref {
		return crosschain.XTx{}, fmt.Errorf("%w: references %q and %q differ", ErrNoMatch, a.Trade.Ref, b.Trade.Ref)
	}
	la, lb := canonical(a.Trade.Legs), canonical(b.Trade.Legs)
	if !slices.Equal(la, lb) {
		return crosschain.XTx{}, fmt.Errorf("%w: legs differ (%s vs %s)", ErrNoMatch, DescribeLegs(la), DescribeLegs(lb))
	}
	for _, p := range a.Trade.Parties() {
		if p != a.Party && p != b.Party {
			return crosschain.XTx{}, fmt.Errorf("%w: %s is a party of the trade but gave no instruction", ErrNoMatch, p)
		}
	}
	coord, err := agree("coordinator", a.Coordinator, b.Coordinator, "")
	if err != nil {
		return crosschain.XTx{}, err
	}
	deadline, err := agree("deadline", a.Deadline, b.Deadline, time.Time{})
	if err != nil {
		return crosschain.XTx{}, err
	}
	if deadline.IsZero() {
		return crosschain.XTx{}, fmt.Errorf("%w: neither instruction gives a deadline", ErrInvalid)
	}
	if coord == "" {
		coord = la[0].Chain
	}
	kind := a.Trade.Kind
	if kind != b.Trade.Kind {
		kind = OtherKind
	}
	return Trade{Kind: kind, Legs: la, Ref: a.Trade.Ref}.XTx(coord, deadline)
}

func agree[T comparable](what string, a, b, zero T) (T, error) {
	switch {
	case a == zero:
		return b, nil
	case b == zero || a == b:
		return a, nil
	}
	return zero, fmt.Errorf("%w: %ss %v and %v differ", ErrNoMatch, what, a, b)
}

// canonical returns legs sorted by chain, asset, from, to, amount.
func canonical(legs []crosschain.Leg) []crosschain.Leg {
	out := slices.Clone(legs)
	slices.SortFunc(out, compareLegs)
	return out
}

func compareLegs(a, b crosschain.Leg) int {
	if c := strings.Compare(a.Chain, b.Chain); c != 0 {
		return c
	}
	if c := strings.Compare(a.Asset, b.Asset); c != 0 {
		return c
	}
	if c := strings.Compare(a.From.String(), b.From.String()); c != 0 {
		return c
	}
	if c := strings.Compare(a.To.String(), b.To.String()); c != 0 {
		return c
	}
	switch {
	case a.Amount < b.Amount:
		return -1
	case a.Amount > b.Amount:
		return 1
	}
	return strings.Compare(string(a.Kind), string(b.Kind))
}

// SameTerms reports whether a and b are the same trade but for their
// deadlines: the same coordinator, reference and legs, the legs in any order
// (nonce and memo are not compared). A client that finds an XTx under a
// reference it is about to use tells with it a trade submitted again, whose
// status it can report, from another trade under a reference already taken.
func SameTerms(a, b *crosschain.XTx) bool {
	return a.Coordinator == b.Coordinator && a.Ref == b.Ref && slices.Equal(canonical(a.Legs), canonical(b.Legs))
}

// DescribeLegs writes legs for people: CHAIN:ASSET:AMOUNT FROM->TO, short addresses.
func DescribeLegs(legs []crosschain.Leg) string {
	var b strings.Builder
	for i, l := range legs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s:%s:%d %s->%s", l.Chain, l.Asset, l.Amount, short(l.From), short(l.To))
	}
	return b.String()
}

func short(a crypto.Address) string { return a.String()[:8] }

// XTx returns the transaction the instruction describes on its own: its legs in
// canonical order, its coordinator (default: the first of those legs' chain) and
// deadline. When both instructions of a Match give coordinator and deadline, Match
// returns this same XTx, so a party can sign its instruction before matching.
func (in Instruction) XTx() (crosschain.XTx, error) {
	legs := canonical(in.Trade.Legs)
	if len(legs) == 0 {
		return crosschain.XTx{}, fmt.Errorf("%w: no legs", ErrInvalid)
	}
	coord := in.Coordinator
	if coord == "" {
		coord = legs[0].Chain
	}
	return Trade{Kind: in.Trade.Kind, Legs: legs, Ref: in.Trade.Ref}.XTx(coord, in.Deadline)
}

// SignedInstruction is an instruction with its party's signature over the XTx
// it describes (Instruction.XTx). A party that pays no leg need not sign.
type SignedInstruction struct {
	Instruction
	Sig *crosschain.PartySig `json:"sig,omitempty"`
}

// Sign returns in signed by key, which must be in.Party's.
func Sign(in Instruction, key crypto.PrivateKey) (SignedInstruction, error) {
	if key.Public().Address() != in.Party {
		return SignedInstruction{}, fmt.Errorf("%w: the key is %s's, the instruction %s's", ErrInvalid, key.Public().Address(), in.Party)
	}
	x, err := in.XTx()
	if err != nil {
		return SignedInstruction{}, err
	}
	ps, err := crosschain.SignXTx(&x, key)
	if err != nil {
		return SignedInstruction{}, err
	}
	return SignedInstruction{Instruction: in, Sig: &ps}, nil
}

// MatchSigned matches two signed instructions and returns the XTx with the
// signatures of its paying parties, ready for xchain/prepare. Each instruction
// must give the coordinator and deadline its signature covers.
func MatchSigned(a, b SignedInstruction) (*crosschain.Signed, error) {
	x, err := Match(a.Instruction, b.Instruction)
	if err != nil {
		return nil, err
	}
	s := &crosschain.Signed{XTx: x}
	for _, in := range []SignedInstruction{a, b} {
		if !x.IsParty(in.Party) {
			continue // receives only: its signature is not needed
		}
		if in.Sig == nil {
			return nil, fmt.Errorf("%w: the instruction of %s is not signed", crosschain.ErrMissingSignature, in.Party)
		}
		if in.Sig.PubKey.Address() != in.Party {
			return nil, fmt.Errorf("%w: the instruction of %s is signed by %s", crosschain.ErrMissingSignature, in.Party, in.Sig.PubKey.Address())
		}
		s.Sigs = append(s.Sigs, *in.Sig)
	}
	if err := s.VerifySigs(); err != nil {
		return nil, fmt.Errorf("%w (each instruction must name the coordinator and deadline its party signed)", err)
	}
	return s, nil
}
