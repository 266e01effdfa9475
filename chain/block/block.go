// Package block defines PLUG blocks and headers, and builds and checks them from the
// execution of their transactions. A header commits to everything a light client
// needs: the previous header, the transactions, their receipts, the resulting state
// root and the validator sets that sign this block and the next one.
package block

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/liveness"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// Limits on a block.
const (
	// MaxTxs is the most transactions one block may hold.
	MaxTxs = 20000
	// MaxBlockSize is the largest encoded block accepted.
	MaxBlockSize = 32 << 20
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrInvalid: the block does not follow from its parent and its transactions.
	ErrInvalid = errors.New("invalid block")
	// ErrTooLarge: too many transactions or bytes.
	ErrTooLarge = errors.New("block too large")
)

// Header is a block's summary, signed by validators and followed by light clients.
// It lives in package header so that light clients (spv) can use it without this
// package's execution and storage dependencies.
type Header = header.Header

// Block is a header and its ordered transactions.
type Block struct {
	Header Header   `cbor:"1,keyasint" json:"header"`
	Txs    []*tx.Tx `cbor:"2,keyasint" json:"txs"`
	// LastCert is the parent's commit certificate, on chains that count
	// absent validators (chain/liveness); nil elsewhere. The header does not
	// hash it: its effect, who signed, is in the state root.
	LastCert *consensus.Certificate `cbor:"3,keyasint,omitempty" json:"last_cert,omitempty"`
}

// Encode returns the block's canonical encoding.
func (b *Block) Encode() ([]byte, error) { return encoding.Marshal(b) }

// Decode parses an encoded block and checks every transaction's shape.
func Decode(data []byte) (*Block, error) {
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxBlockSize)
	}
	// Transactions are decoded one by one from their own bytes, so each keeps its
	// encoding and its ID costs a hash, not a re-encoding.
	var w struct {
		Header   Header                 `cbor:"1,keyasint"`
		Txs      []cbor.RawMessage      `cbor:"2,keyasint"`
		LastCert *consensus.Certificate `cbor:"3,keyasint,omitempty"`
	}
	if err := encoding.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode block: %w", err)
	}
	if len(w.Txs) > MaxTxs {
		return nil, fmt.Errorf("%w: %d transactions, limit %d", ErrTooLarge, len(w.Txs), MaxTxs)
	}
	b := &Block{Header: w.Header, LastCert: w.LastCert}
	if w.Txs != nil { // null and [] are different encodings; keep which one it was
		b.Txs = make([]*tx.Tx, len(w.Txs))
	}
	for i, raw := range w.Txs {
		t, err := tx.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
		b.Txs[i] = t
	}
	return b, nil
}

// UnmarshalCBOR decodes as Decode does, so that a block inside another message
// (a gateway's block response) keeps its transactions' encodings too: their IDs
// and the block's tx root then cost hashes, not a re-encoding of every
// transaction.
func (b *Block) UnmarshalCBOR(data []byte) error {
	d, err := Decode(data)
	if err != nil {
		return err
	}
	*b = *d
	return nil
}

// TxRoot returns the list Merkle root of txs' IDs.
func TxRoot(txs []*tx.Tx) (hash.Hash, error) {
	ids := make([]hash.Hash, len(txs))
	for i, t := range txs {
		id, err := t.ID()
		if err != nil {
			return hash.Hash{}, fmt.Errorf("transaction %d: %w", i, err)
		}
		ids[i] = id
	}
	return proof.ListRoot(ids), nil
}

// Store is the state a block executes on and stages its changes into.
type Store interface {
	exec.Reader
	Stage(changes []state.Change) (*state.Batch, error)
}

// Outcome is an executed block, ready to commit.
type Outcome struct {
	Header   Header
	Receipts []exec.Receipt
	// Batch holds the new state version; commit it with state.Store.Commit once the
	// block is final.
	Batch *state.Batch
	// NextValidators is the set that signs the next block.
	NextValidators valset.Set
	// Rejected are the receipts of the transactions Build left out because the
	// executor rejected them (never set by Check).
	Rejected []exec.Receipt
}

// Build executes txs on top of st, whose committed state is the parent's, and
// returns the header of the resulting block. prev is the parent's header (nil for
// the first block after genesis, whose PrevHash is zero). Rejected
// transactions are dropped from the block: a proposer never includes them.
func Build(ex *exec.Executor, st Store, prev *Header, chainID string, time int64, txs []*tx.Tx, sigs []error, last *consensus.Certificate) (*Block, *Outcome, error) {
	env, err := nextEnv(prev, chainID, time)
	if err != nil {
		return nil, nil, err
	}
	res, err := ex.Execute(st, env, txs, sigs)
	if err != nil {
		return nil, nil, err
	}
	kept := txs[:0:0]
	keptSigs := make([]error, 0, len(txs))
	var rejected []exec.Receipt
	for i, r := range res.Receipts {
		if r.Code != exec.Rejected {
			kept = append(kept, txs[i])
			keptSigs = append(keptSigs, nil)
		} else {
			rejected = append(rejected, r)
		}
	}
	if len(kept) != len(txs) {
		if res, err = ex.Execute(st, env, kept, keptSigs); err != nil {
			return nil, nil, err
		}
	}
	b := &Block{Txs: kept, LastCert: last}
	out, err := finish(st, prev, env, kept, res, last)
	if err != nil {
		return nil, nil, err
	}
	out.Rejected = rejected
	b.Header = out.Header
	return b, out, nil
}

// Check re-executes b on top of st (the parent's committed state) and checks that
// its header is exactly what the execution yields. A block holding a rejected
// transaction is invalid. sigs are the transactions' signature verdicts when the
// caller already has them (nil: Check verifies them, in one batch).
func Check(ex *exec.Executor, st Store, prev *Header, b *Block, sigs []error) (*Outcome, error) {
	if len(b.Txs) > MaxTxs {
		return nil, fmt.Errorf("%w: %d transactions, limit %d", ErrTooLarge, len(b.Txs), MaxTxs)
	}
	env, err := nextEnv(prev, b.Header.ChainID, b.Header.Time)
	if err != nil {
		return nil, err
	}
	res, err := ex.Execute(st, env, b.Txs, sigs)
	if err != nil {
		return nil, err
	}
	for i, r := range res.Receipts {
		if r.Code == exec.Rejected {
			return nil, fmt.Errorf("%w: transaction %d is rejected: %s", ErrInvalid, i, r.Error)
		}
	}
	out, err := finish(st, prev, env, b.Txs, res, b.LastCert)
	if err != nil {
		return nil, err
	}
	want, got := out.Header, b.Header
	want.Proposer = got.Proposer
	if want.Hash() != got.Hash() {
		return nil, fmt.Errorf("%w: header does not match execution (%s)", ErrInvalid, diff(&want, &got))
	}
	return out, nil
}

func nextEnv(prev *Header, chainID string, time int64) (exec.Env, error) {
	env := exec.Env{ChainID: chainID, Height: 1, Time: time}
	if prev != nil {
		if prev.ChainID != chainID {
			return env, fmt.Errorf("%w: chain %q follows a header of %q", ErrInvalid, chainID, prev.ChainID)
		}
		if time < prev.Time {
			return env, fmt.Errorf("%w: time %d goes back from %d", ErrInvalid, time, prev.Time)
		}
		env.Height = prev.Height + 1
	}
	return env, nil
}

func finish(st Store, prev *Header, env exec.Env, txs []*tx.Tx, res *exec.Result, last *consensus.Certificate) (*Outcome, error) {
	txRoot, err := TxRoot(txs)
	if err != nil {
		return nil, err
	}
	var prevID *hash.Hash
	if prev != nil {
		id := prev.Hash()
		prevID = &id
	}
	if err := liveness.Apply(res, &committed{st}, env.ChainID, env.Height, prevID, last); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	next, err := validator.Load(res)
	if err != nil {
		return nil, err
	}
	if err := next.Check(); err != nil {
		return nil, fmt.Errorf("next validator set: %w", err)
	}
	batch, err := st.Stage(res.Changes)
	if err != nil {
		return nil, fmt.Errorf("stage state: %w", err)
	}
	h := Header{
		ChainID: env.ChainID, Height: env.Height, Time: env.Time,
		TxRoot: txRoot, ReceiptsRoot: res.ReceiptsRoot(), StateRoot: batch.Root(),
		NextValidatorsHash: next.Hash(),
	}
	if prev != nil {
		h.PrevHash = prev.Hash()
		h.ValidatorsHash = prev.NextValidatorsHash
	} else {
		cur, err := validator.Load(&committed{st})
		if err != nil {
			return nil, err
		}
		h.ValidatorsHash = cur.Hash()
	}
	return &Outcome{Header: h, Receipts: res.Receipts, Batch: batch, NextValidators: next}, nil
}

// committed reads the committed state (the genesis state, for block 1).
type committed struct{ st exec.Reader }

func (c *committed) Get(key string, dst any) (bool, error) {
	v, ok, err := c.st.Get(key)
	if err != nil || !ok {
		return false, err
	}
	return true, encoding.UnmarshalLax(v, dst)
}

func diff(want, got *Header) string {
	switch {
	case want.Height != got.Height:
		return fmt.Sprintf("height %d, want %d", got.Height, want.Height)
	case want.PrevHash != got.PrevHash:
		return "prev_hash"
	case want.TxRoot != got.TxRoot:
		return "tx_root"
	case want.ReceiptsRoot != got.ReceiptsRoot:
		return "receipts_root"
	case want.StateRoot != got.StateRoot:
		return fmt.Sprintf("state_root %s, want %s", got.StateRoot.Short(), want.StateRoot.Short())
	case want.ValidatorsHash != got.ValidatorsHash:
		return "validators_hash"
	case want.NextValidatorsHash != got.NextValidatorsHash:
		return "next_validators_hash"
	}
	return "chain_id or time"
}
