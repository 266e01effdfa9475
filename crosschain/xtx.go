package crosschain

import (
	"errors"
	"fmt"
	"regexp"
	"unicode"
	"unicode/utf8"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
)

// Limits on a crosschain transaction.
const (
	// MaxLegs is the most legs one XTx may have.
	MaxLegs = 64
	// MaxMemo is the longest memo, in bytes.
	MaxMemo = 256
	// MaxRef is the longest trade reference, in bytes.
	MaxRef = 128
)

// Leg is one escrowed transfer on one chain: Amount of Asset from From to To.
type Leg struct {
	Chain  string         `cbor:"1,keyasint" json:"chain"`
	Asset  string         `cbor:"2,keyasint" json:"asset"`
	From   crypto.Address `cbor:"3,keyasint" json:"from"`
	To     crypto.Address `cbor:"4,keyasint" json:"to"`
	Amount uint64         `cbor:"5,keyasint" json:"amount"`
	// Kind is Move (the zero value, omitted from the encoding so that XTx IDs of
	// plain legs do not depend on it), Out or In.
	Kind LegKind `cbor:"6,keyasint,omitempty" json:"kind,omitempty"`
}

// LegKind says what a leg does with its amount on its chain.
type LegKind string

// Leg kinds. A Move leg moves the amount from From to To on its chain. Out and In
// legs come in adjacent pairs (Out at leg i, In at leg i+1, same asset, parties and
// amount, on two different chains) and move value from one chain to another, as a
// cross-shard transfer does: the Out leg escrows From's amount and, on commit, burns
// it (its chain's supply falls); the In leg reserves the amount against its chain's
// supply cap and, on commit, mints it to To (its chain's supply rises). So the sum
// of the supplies over the chains is conserved, and value appears on the In chain
// only when the chain that burnt it is proven prepared.
const (
	Move LegKind = ""
	Out  LegKind = "out"
	In   LegKind = "in"
)

// XTx is a crosschain transaction: legs that settle all together or not at all,
// the chain that decides, and the deadline on that chain's clock.
type XTx struct {
	Legs []Leg `cbor:"1,keyasint" json:"legs"`
	// Coordinator is the chain ID of the chain that records the decision.
	Coordinator string `cbor:"2,keyasint" json:"coordinator"`
	// Deadline is the last coordinator block time (Unix ms) at which the XTx may
	// commit; after it, the coordinator can only abort.
	Deadline int64 `cbor:"3,keyasint" json:"deadline"`
	// Nonce tells apart otherwise identical XTxs.
	Nonce uint64 `cbor:"4,keyasint" json:"nonce"`
	// Memo is free text for people; no rule reads it.
	Memo string `cbor:"5,keyasint,omitempty" json:"memo,omitempty"`
	// Ref is the trade's reference (see CheckRef), empty for none. Each chain
	// lets one XTx per paying party and reference escrow or commit, ever: a
	// trade submitted twice under one reference settles at most once. Omitted
	// from the encoding when empty, so that IDs of XTxs without one do not
	// depend on it.
	Ref string `cbor:"6,keyasint,omitempty" json:"ref,omitempty"`
}

// ID is the XTx's identity: the hash of its canonical encoding under hash.DomainXTx.
// Parties sign it; every record of the XTx is keyed by it.
func (x *XTx) ID() hash.Hash { return encoding.MustHash(hash.DomainXTx, x) }

// Parties returns the distinct From addresses of the legs, in leg order: every one
// of them must sign the XTx.
func (x *XTx) Parties() []crypto.Address {
	var out []crypto.Address
	seen := map[crypto.Address]bool{}
	for _, l := range x.Legs {
		if !seen[l.From] {
			seen[l.From] = true
			out = append(out, l.From)
		}
	}
	return out
}

// IsParty reports whether addr is the From of some leg.
func (x *XTx) IsParty(addr crypto.Address) bool {
	for _, l := range x.Legs {
		if l.From == addr {
			return true
		}
	}
	return false
}

var chainIDRule = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// CheckChainID checks a chain ID: 1-64 of a-z 0-9 '-', starting alphanumeric.
func CheckChainID(id string) error {
	if !chainIDRule.MatchString(id) {
		return fmt.Errorf("%w: chain id %q (want 1-64 of a-z 0-9 -)", ErrMalformed, id)
	}
	return nil
}

// CheckRef checks a trade reference: at most MaxRef bytes of valid UTF-8, every
// character printable (no control or formatting characters), so that a
// reference reads the same wherever it is shown.
func CheckRef(ref string) error {
	if len(ref) > MaxRef {
		return fmt.Errorf("%w: ref of %d bytes (limit %d)", ErrMalformed, len(ref), MaxRef)
	}
	if !utf8.ValidString(ref) {
		return fmt.Errorf("%w: ref is not valid UTF-8", ErrMalformed)
	}
	for i, r := range ref {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: ref has the unprintable character %U at byte %d", ErrMalformed, r, i)
		}
	}
	return nil
}

// Check verifies the XTx's shape, independent of any state.
func (x *XTx) Check() error {
	if len(x.Legs) == 0 || len(x.Legs) > MaxLegs {
		return fmt.Errorf("%w: %d legs (1..%d)", ErrMalformed, len(x.Legs), MaxLegs)
	}
	if err := CheckChainID(x.Coordinator); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if x.Deadline <= 0 {
		return fmt.Errorf("%w: deadline %d", ErrMalformed, x.Deadline)
	}
	if len(x.Memo) > MaxMemo {
		return fmt.Errorf("%w: memo of %d bytes (limit %d)", ErrMalformed, len(x.Memo), MaxMemo)
	}
	if err := CheckRef(x.Ref); err != nil {
		return err
	}
	for i, l := range x.Legs {
		if err := CheckChainID(l.Chain); err != nil {
			return fmt.Errorf("leg %d: %w", i, err)
		}
		if err := asset.CheckName(l.Asset); err != nil {
			return fmt.Errorf("%w: leg %d: %v", ErrMalformed, i, err)
		}
		switch {
		case l.From.IsZero() || l.To.IsZero():
			return fmt.Errorf("%w: leg %d: zero address", ErrMalformed, i)
		case l.From == l.To:
			return fmt.Errorf("%w: leg %d: transfer to self", ErrMalformed, i)
		case l.Amount == 0:
			return fmt.Errorf("%w: leg %d: amount must be positive", ErrMalformed, i)
		}
		if err := x.checkKind(i); err != nil {
			return err
		}
	}
	return nil
}

// checkKind checks that leg i's kind is known and that Out and In legs pair up.
func (x *XTx) checkKind(i int) error {
	l := x.Legs[i]
	switch l.Kind {
	case Move:
		return nil
	case Out:
		if i+1 >= len(x.Legs) || x.Legs[i+1].Kind != In {
			return fmt.Errorf("%w: leg %d is out and leg %d is not its in leg", ErrMalformed, i, i+1)
		}
		return nil
	case In:
		if i == 0 || x.Legs[i-1].Kind != Out {
			return fmt.Errorf("%w: leg %d is in and leg %d is not its out leg", ErrMalformed, i, i-1)
		}
		o := x.Legs[i-1]
		if o.Asset != l.Asset || o.From != l.From || o.To != l.To || o.Amount != l.Amount {
			return fmt.Errorf("%w: in leg %d does not match out leg %d (asset, from, to, amount)", ErrMalformed, i, i-1)
		}
		if o.Chain == l.Chain {
			return fmt.Errorf("%w: out leg %d and in leg %d are both on %q", ErrMalformed, i-1, i, l.Chain)
		}
		return nil
	}
	return fmt.Errorf("%w: leg %d: unknown kind %q (want \"\", out or in)", ErrMalformed, i, l.Kind)
}

// PartySig is one party's signature over an XTx ID.
type PartySig struct {
	PubKey crypto.PublicKey `cbor:"1,keyasint" json:"pub_key"`
	Sig    []byte           `cbor:"2,keyasint" json:"sig"`
}

// Signed is an XTx with its parties' signatures: any chain can check that every
// party agreed without seeing the parties' own transactions.
type Signed struct {
	XTx  XTx        `cbor:"1,keyasint" json:"xtx"`
	Sigs []PartySig `cbor:"2,keyasint" json:"sigs"`
}

// SignXTx returns key's signature over x's ID.
func SignXTx(x *XTx, key crypto.PrivateKey) (PartySig, error) {
	id := x.ID()
	sig, err := key.Sign(id[:])
	if err != nil {
		return PartySig{}, fmt.Errorf("sign xtx %s: %w", id.Short(), err)
	}
	return PartySig{PubKey: key.Public(), Sig: sig}, nil
}

// NewSigned signs x with every key.
func NewSigned(x XTx, keys ...crypto.PrivateKey) (*Signed, error) {
	s := &Signed{XTx: x}
	for _, k := range keys {
		ps, err := SignXTx(&s.XTx, k)
		if err != nil {
			return nil, err
		}
		s.Sigs = append(s.Sigs, ps)
	}
	return s, nil
}

// VerifySigs checks that every party of the XTx signed its ID. Every signature
// carried must be a valid one by a party, at most one per party.
func (s *Signed) VerifySigs() error { return s.verifySigs(s.XTx.ID()) }

// verifySigs is VerifySigs for a caller that holds the XTx's ID already.
func (s *Signed) verifySigs(id hash.Hash) error {
	if len(s.Sigs) > MaxLegs {
		return fmt.Errorf("%w: %d signatures (limit %d)", ErrMalformed, len(s.Sigs), MaxLegs)
	}
	signed := map[crypto.Address]bool{}
	for i, ps := range s.Sigs {
		a := ps.PubKey.Address()
		if !s.XTx.IsParty(a) {
			return fmt.Errorf("%w: signature %d is by %s, not a party", ErrMissingSignature, i, a)
		}
		if signed[a] {
			return fmt.Errorf("%w: %s signs twice", ErrMalformed, a)
		}
		// Cached: every candidate block of a height executes the same envelope.
		if err := crypto.VerifyCached(ps.PubKey, id[:], ps.Sig); err != nil {
			return fmt.Errorf("%w: signature of %s: %v", ErrMissingSignature, a, err)
		}
		signed[a] = true
	}
	for _, p := range s.XTx.Parties() {
		if !signed[p] {
			return fmt.Errorf("%w: party %s did not sign", ErrMissingSignature, p)
		}
	}
	return nil
}

// Sentinel errors; callers branch on them with errors.Is. Failures of the
// transforms also wrap the matching transform sentinel (ErrInvalid, ErrNotFound).
var (
	// ErrMalformed: an XTx, proof or payload of the wrong shape.
	ErrMalformed = errors.New("malformed crosschain payload")
	// ErrWrongChain: the step is for another chain (leg, coordinator, client).
	ErrWrongChain = errors.New("wrong chain")
	// ErrMissingSignature: a party's signature is missing or invalid.
	ErrMissingSignature = errors.New("missing party signature")
	// ErrAlreadyPrepared: the leg already has a record; prepare changes nothing.
	ErrAlreadyPrepared = errors.New("leg already prepared")
	// ErrAlreadyDecided: the coordinator already recorded the XTx's decision.
	ErrAlreadyDecided = errors.New("xtx already decided")
	// ErrAlreadyFinished: the leg is already committed or aborted.
	ErrAlreadyFinished = errors.New("leg already finished")
	// ErrNotReady: not every leg is proven prepared, none is proven refused and the
	// deadline has not passed (decide); or no decision is known (finish).
	ErrNotReady = errors.New("not ready")
	// ErrNotPrepared: a commit decision for a leg this chain never prepared.
	ErrNotPrepared = errors.New("leg not prepared")
	// ErrBadProof: a proof does not verify against the light client.
	ErrBadProof = errors.New("bad crosschain proof")
	// ErrNoClient: no light client of the named chain.
	ErrNoClient = errors.New("no light client")
	// ErrClientExists: lc/create for a chain that already has a client.
	ErrClientExists = errors.New("light client exists")
	// ErrStaleUpdate: a header at or below the client's height (a duplicate).
	ErrStaleUpdate = errors.New("stale light-client update")
)
