package crosschain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/spv"
)

// Transform type names.
const (
	TypeLCCreate       = "lc/create"
	TypeLCUpdate       = "lc/update"
	TypeLCMisbehaviour = "lc/misbehaviour"
	TypePrepare        = "xchain/prepare"
	TypeDecide         = "xchain/decide"
	TypeFinish         = "xchain/finish"
	TypeBatch          = "xchain/batch"
	TypeSetParams      = "xchain/set-params"
)

// RelayerTransforms are the transforms a chain's "relayer" role lists: keeping light
// clients current and carrying the steps of the two-phase commit. lc/create belongs
// to the admin role, as does xchain/set-params.
var RelayerTransforms = []string{TypeLCUpdate, TypeLCMisbehaviour, TypePrepare, TypeDecide, TypeFinish, TypeBatch}

// Key prefixes.
const (
	LCPrefix       = "lc/"
	LCRootPrefix   = "lcroots/"
	LegPrefix      = "xchain/leg/"
	DecisionPrefix = "xchain/decision/"
	EscrowPrefix   = "escrow/"
	MintingPrefix  = "xchain/minting/"
	XTxPrefix      = "xchain/xtx/"
	RefPrefix      = "xchain/ref/"
)

// ParamsKey is where a chain keeps its crosschain Params.
const ParamsKey = "xchain/params"

// LCKey is where the light client of chainID is stored.
func LCKey(chainID string) string { return LCPrefix + chainID }

// LCRootKey is where the light client of chainID keeps the root it verified at
// height (for the last spv.MaxRoots heights).
func LCRootKey(chainID string, height uint64) string {
	return LCRootPrefix + chainID + "/" + strconv.FormatUint(height, 10)
}

// LegKey is where leg i of XTx id records its status.
func LegKey(id hash.Hash, i int) string { return LegPrefix + id.String() + "/" + strconv.Itoa(i) }

// DecisionKey is where the coordinator records the decision of XTx id.
func DecisionKey(id hash.Hash) string { return DecisionPrefix + id.String() }

// EscrowKey is where leg i of XTx id holds its escrowed amount.
func EscrowKey(id hash.Hash, i int) string { return EscrowPrefix + id.String() + "/" + strconv.Itoa(i) }

// MintingKey is where a chain sums the amounts of asset its prepared In legs have
// reserved: they count against the asset's supply cap until they finish.
func MintingKey(asset string) string { return MintingPrefix + asset }

// XTxKey is where a chain keeps the terms of XTx id, once a prepare or decide of
// it ran there: anyone holding only the ID (or a RefRecord) can read the trade.
func XTxKey(id hash.Hash) string { return XTxPrefix + id.String() }

// RefKey is where a chain records which XTx holds reference ref for party: the
// party's address and the hex SHA-256 of the reference, so that a key has a
// fixed length whatever the reference.
func RefKey(party crypto.Address, ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return RefPrefix + party.String() + "/" + hex.EncodeToString(sum[:])
}

// RefRecord names the XTx that holds a party's trade reference on a chain.
type RefRecord struct {
	ID  hash.Hash `cbor:"1,keyasint" json:"id"`
	Ref string    `cbor:"2,keyasint" json:"ref"`
}

// Status is a leg's state on its chain.
type Status string

// Leg statuses. A leg without a record is pending. prepared and refused are the
// outcomes of phase 1; committed and aborted of phase 2. A refused leg becomes
// aborted when the abort decision reaches it.
const (
	Prepared  Status = "prepared"
	Refused   Status = "refused"
	Committed Status = "committed"
	Aborted   Status = "aborted"
)

// LegRecord is a leg's record on its chain; relays prove it to the coordinator.
type LegRecord struct {
	Status Status `cbor:"1,keyasint" json:"status"`
	// Reason says why a leg was refused or aborted.
	Reason string `cbor:"2,keyasint,omitempty" json:"reason,omitempty"`
	// Height is the block that wrote the record.
	Height uint64 `cbor:"3,keyasint" json:"height"`
}

// Decision is the coordinator's one decision of an XTx; relays prove it to the legs'
// chains.
type Decision struct {
	Commit bool   `cbor:"1,keyasint" json:"commit"`
	Reason string `cbor:"2,keyasint,omitempty" json:"reason,omitempty"`
	// Height and Time are the coordinator block that decided.
	Height uint64 `cbor:"3,keyasint" json:"height"`
	Time   int64  `cbor:"4,keyasint" json:"time"`
}

// Escrow is an amount held for a prepared leg. Per asset, balances plus escrows
// equal the supply on every chain.
type Escrow struct {
	Asset  string `cbor:"1,keyasint" json:"asset"`
	Amount uint64 `cbor:"2,keyasint" json:"amount"`
}

// Proof is a value of a key in another chain's state at a height, with the Merkle
// proof against that height's state root as known to this chain's light client.
type Proof struct {
	Height uint64            `cbor:"1,keyasint" json:"height"`
	Value  []byte            `cbor:"2,keyasint" json:"value"`
	Proof  *proof.StateProof `cbor:"3,keyasint" json:"proof"`
}

// LegProof proves the record of one leg.
type LegProof struct {
	Leg   uint32 `cbor:"1,keyasint" json:"leg"`
	Proof Proof  `cbor:"2,keyasint" json:"proof"`
}

// AddModels registers the crosschain models.
func AddModels(ms *transform.Models) {
	ms.MustAdd(transform.Model{Name: "light-client", Prefix: LCPrefix, Validate: func(v any) error {
		c, ok := v.(spv.ClientState)
		if !ok {
			return fmt.Errorf("want spv.ClientState, got %T", v)
		}
		return c.Check()
	}})
	ms.MustAdd(transform.Model{Name: "light-client-root", Prefix: LCRootPrefix, Validate: want[spv.ConsensusState]})
	ms.MustAdd(transform.Model{Name: "xchain-leg", Prefix: LegPrefix, Validate: func(v any) error {
		r, ok := v.(LegRecord)
		if !ok {
			return fmt.Errorf("want crosschain.LegRecord, got %T", v)
		}
		switch r.Status {
		case Prepared, Refused, Committed, Aborted:
			return nil
		}
		return fmt.Errorf("unknown leg status %q", r.Status)
	}})
	ms.MustAdd(transform.Model{Name: "xchain-minting", Prefix: MintingPrefix, Default: func() any { return uint64(0) }, Validate: want[uint64]})
	ms.MustAdd(transform.Model{Name: "xchain-decision", Prefix: DecisionPrefix, Validate: want[Decision]})
	ms.MustAdd(transform.Model{Name: "xchain-xtx", Prefix: XTxPrefix, Validate: want[XTx]})
	ms.MustAdd(transform.Model{Name: "xchain-ref", Prefix: RefPrefix, Validate: func(v any) error {
		r, ok := v.(RefRecord)
		if !ok {
			return fmt.Errorf("want crosschain.RefRecord, got %T", v)
		}
		if r.Ref == "" {
			return fmt.Errorf("empty ref")
		}
		return CheckRef(r.Ref)
	}})
	ms.MustAdd(transform.Model{Name: "xchain-params", Prefix: ParamsKey, Default: func() any { return DefaultParams() }, Validate: func(v any) error {
		p, ok := v.(Params)
		if !ok {
			return fmt.Errorf("want crosschain.Params, got %T", v)
		}
		return p.Check()
	}})
	ms.MustAdd(transform.Model{Name: "escrow", Prefix: EscrowPrefix, Validate: func(v any) error {
		e, ok := v.(Escrow)
		if !ok {
			return fmt.Errorf("want crosschain.Escrow, got %T", v)
		}
		if e.Amount == 0 {
			return fmt.Errorf("empty escrow")
		}
		return nil
	}})
}

func want[T any](v any) error {
	if _, ok := v.(T); !ok {
		var z T
		return fmt.Errorf("want %T, got %T", z, v)
	}
	return nil
}

// Register adds the crosschain transforms to reg.
func Register(reg *transform.Registry) {
	reg.MustRegister(TypeLCCreate, &LCCreate{})
	reg.MustRegister(TypeLCUpdate, &LCUpdate{})
	reg.MustRegister(TypeLCMisbehaviour, &LCMisbehaviour{})
	reg.MustRegister(TypePrepare, &Prepare{})
	reg.MustRegister(TypeDecide, &Decide{})
	reg.MustRegister(TypeFinish, &Finish{})
	reg.MustRegister(TypeBatch, &Batch{})
	reg.MustRegister(TypeSetParams, &SetParams{})
}
