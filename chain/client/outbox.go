package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/plugchain/plug/chain/atomicfile"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/tx"
)

// Outbox is a client's durable journal of the transactions it submitted and
// has no final answer for yet: one file per transaction, DIR/CHAIN/ID.tx,
// holding its signed bytes. A program that exits right after a node answered
// "pending" (a command line without --wait) keeps its transactions there, and
// the next run reconciles them: what committed or was dropped is forgotten and
// reported, what a node lost is sent again with the same bytes, and new
// transactions take nonces after the ones still pending. Several processes may
// share an outbox: every write is a rename, and sending the same bytes twice is
// harmless.
type Outbox struct {
	dir string
}

// OpenOutbox opens (creating it if needed) the outbox in dir.
func OpenOutbox(dir string) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &Outbox{dir: dir}, nil
}

// Dir returns the outbox's directory.
func (o *Outbox) Dir() string { return o.dir }

func (o *Outbox) path(chainID string, id hash.Hash) string {
	return filepath.Join(o.dir, chainID, id.String()+".tx")
}

// Put records t, submitted and not final.
func (o *Outbox) Put(t *tx.Tx) error {
	id, err := t.ID()
	if err != nil {
		return err
	}
	raw, err := t.Encode()
	if err != nil {
		return err
	}
	p := o.path(t.Body.ChainID, id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := atomicfile.Write(p, raw, 0o600); err != nil {
		return fmt.Errorf("outbox: record %s: %w", id.Short(), err)
	}
	return nil
}

// droppedDir is where a chain's dropped transactions are kept, for a caller
// that decides to sign them again.
const droppedDir = "dropped"

// Forget removes the transaction id of chainID, pending or dropped; forgetting
// one that is not there is not an error.
func (o *Outbox) Forget(chainID string, id hash.Hash) error {
	for _, p := range []string{o.path(chainID, id), filepath.Join(o.dir, chainID, droppedDir, id.String()+".tx")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("outbox: %w", err)
		}
	}
	return nil
}

// retire moves a dropped transaction aside, where GetDropped finds it.
func (o *Outbox) retire(chainID string, id hash.Hash) error {
	dst := filepath.Join(o.dir, chainID, droppedDir, id.String()+".tx")
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := os.Rename(o.path(chainID, id), dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// GetDropped returns a transaction Reconcile found dropped, from any chain, or
// an error matching ErrNotFound.
func (o *Outbox) GetDropped(id hash.Hash) (*tx.Tx, error) {
	chains, _ := os.ReadDir(o.dir)
	for _, c := range chains {
		if t, err := o.read(filepath.Join(o.dir, c.Name(), droppedDir, id.String()+".tx"), id); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: transaction %s is not among the dropped ones of the outbox %s", ErrNotFound, id.Short(), o.dir)
}

// Get returns the recorded transaction id of chainID, or an error matching
// ErrNotFound.
func (o *Outbox) Get(chainID string, id hash.Hash) (*tx.Tx, error) {
	return o.read(o.path(chainID, id), id)
}

func (o *Outbox) read(path string, id hash.Hash) (*tx.Tx, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: transaction %s is not in the outbox %s", ErrNotFound, id.Short(), o.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	t, err := tx.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("outbox: %s: %w", path, err)
	}
	if got, _ := t.ID(); got != id {
		return nil, fmt.Errorf("outbox: %s holds transaction %s", path, got.Short())
	}
	return t, nil
}

// Find returns the recorded transaction id of any chain, or an error matching
// ErrNotFound.
func (o *Outbox) Find(id hash.Hash) (*tx.Tx, error) {
	chains, _ := os.ReadDir(o.dir)
	for _, c := range chains {
		if t, err := o.Get(c.Name(), id); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: transaction %s is not in the outbox %s", ErrNotFound, id.Short(), o.dir)
}

// List returns the recorded transactions of chainID, ordered by their first
// signer's nonce. Files that do not decode are skipped.
func (o *Outbox) List(chainID string) ([]*tx.Tx, error) {
	ents, err := os.ReadDir(filepath.Join(o.dir, chainID))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var out []*tx.Tx
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".tx")
		if !ok {
			continue
		}
		h, err := hash.Parse(id)
		if err != nil {
			continue
		}
		if t, err := o.Get(chainID, h); err == nil {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Body.Signers[0].Nonce < out[j].Body.Signers[0].Nonce })
	return out, nil
}

// Outcome is what Reconcile found of one recorded transaction.
type Outcome struct {
	Tx *tx.Tx
	ID hash.Hash
	// Result is set when it is committed.
	Result *gateway.TxResult
	// Err is a *PendingError while it is pending (Reason says when it was sent
	// again), a *DroppedError when it was dropped, or why it could not be
	// asked about.
	Err error
}

// Final reports whether the outcome ends the transaction's story: committed or
// dropped.
func (oc Outcome) Final() bool { return oc.Result != nil || errors.Is(oc.Err, ErrDropped) }

// Reconcile follows every recorded transaction of c's chain (chainID) once
// (Client.Follow: a lost one is sent again) and forgets those that are final,
// keeping dropped ones aside for GetDropped. It returns every outcome, final
// ones included, so the caller can report what became of them.
func (o *Outbox) Reconcile(ctx context.Context, c *Client, chainID string) ([]Outcome, error) {
	txs, err := o.List(chainID)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, 0, len(txs))
	for _, t := range txs {
		id, _ := t.ID()
		res, err := c.Follow(ctx, t)
		oc := Outcome{Tx: t, ID: id, Result: res, Err: err}
		if ferr := o.Settle(t, res, err); ferr != nil {
			return out, ferr
		}
		out = append(out, oc)
	}
	return out, nil
}

// Settle records what became of t, as Follow or Await answered (res, err): a
// committed t is forgotten, a dropped one kept aside for GetDropped, a pending
// one stays.
func (o *Outbox) Settle(t *tx.Tx, res *gateway.TxResult, err error) error {
	id, ierr := t.ID()
	if ierr != nil {
		return ierr
	}
	switch {
	case res != nil && err == nil:
		return o.Forget(t.Body.ChainID, id)
	case errors.Is(err, ErrDropped):
		return o.retire(t.Body.ChainID, id)
	}
	return nil
}

// Next returns the nonce a new transaction of addr on chainID should carry: the
// node's next nonce (Client.Nonce), or past every nonce of addr still recorded
// here, whichever is higher — a transaction a node lost keeps its nonce until
// it is sent again. Call it after Reconcile, which forgets what is final.
func (o *Outbox) Next(ctx context.Context, c *Client, chainID string, addr crypto.Address) (uint64, error) {
	n, err := c.Nonce(ctx, addr)
	if err != nil {
		return 0, err
	}
	txs, err := o.List(chainID)
	if err != nil {
		return 0, err
	}
	for _, t := range txs {
		for _, s := range t.Body.Signers {
			if s.Key.Address() == addr && s.Nonce >= n {
				n = s.Nonce + 1
			}
		}
	}
	return n, nil
}
