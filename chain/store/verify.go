package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
)

// Verify reads every saved height and checks that its records agree: the block
// decodes, its header is the one in the headers bucket and hashes to the recorded
// block ID, the height index points back, it follows the block before it, its
// transactions match its tx root, its certificate is for it and its receipts
// decode, one per transaction; then the genesis record and the consensus
// state. It returns up to limit findings (none: the store is sound) and calls
// progress, if not nil, after each height. The error is for a read that failed
// outright.
func (s *Store) Verify(limit int, progress func(h, of uint64)) ([]string, error) {
	var found []string
	add := func(format string, args ...any) bool {
		found = append(found, fmt.Sprintf(format, args...))
		return len(found) >= limit
	}
	top := s.Height()
	var prev hash.Hash
	for h := uint64(1); h <= top; h++ {
		var full bool
		err := s.view(func(tx *bolt.Tx) error {
			full = s.verifyHeight(tx, h, &prev, add)
			return nil
		})
		if err != nil {
			return found, err
		}
		if full {
			return found, nil
		}
		if progress != nil {
			progress(h, top)
		}
	}
	if _, gh, err := s.Genesis(); err != nil && !errors.Is(err, ErrNotFound) {
		add("genesis record: %v", err)
	} else if err == nil && gh.IsZero() {
		add("genesis record: zero hash")
	}
	if _, err := s.LoadConsensus(); err != nil {
		add("consensus state: %v", err)
	}
	return found, nil
}

// verifyHeight checks the records of height h (see Verify); prev is the block ID
// of h-1 and is set to h's. It returns true once add says enough was found.
func (s *Store) verifyHeight(tx *bolt.Tx, h uint64, prev *hash.Hash, add func(string, ...any) bool) bool {
	key := u64(h)
	raw := tx.Bucket(bucketBlocks).Get(key)
	if raw == nil {
		return add("block %d: missing", h)
	}
	b, err := block.Decode(raw)
	if err != nil {
		return add("block %d: %v", h, err)
	}
	id := b.Header.Hash()
	if b.Header.Height != h {
		return add("block %d: its header says height %d", h, b.Header.Height)
	}
	if rec := tx.Bucket(bucketIDs).Get(key); !bytes.Equal(rec, id[:]) {
		return add("block %d: hashes to %s, but the recorded block ID is %x", h, id.Short(), rec)
	}
	if v := tx.Bucket(bucketHeights).Get(id[:]); len(v) != 8 || binary.BigEndian.Uint64(v) != h {
		return add("block %d: the height index does not point back to it", h)
	}
	if h > 1 && b.Header.PrevHash != *prev {
		return add("block %d: previous hash %s, but block %d is %s", h, b.Header.PrevHash.Short(), h-1, prev.Short())
	}
	*prev = id
	var hd block.Header
	if err := encoding.UnmarshalLax(tx.Bucket(bucketHeaders).Get(key), &hd); err != nil {
		return add("header %d: %v", h, err)
	}
	if hd.Hash() != id {
		return add("header %d: differs from the block's header", h)
	}
	if root, err := block.TxRoot(b.Txs); err != nil || root != b.Header.TxRoot {
		return add("block %d: its transactions do not match its tx root", h)
	}
	var cert consensus.Certificate
	if err := encoding.UnmarshalLax(tx.Bucket(bucketCerts).Get(key), &cert); err != nil {
		return add("certificate %d: %v", h, err)
	}
	if cert.Height != h || cert.BlockID != id {
		return add("certificate %d: for height %d block %s, not this block %s", h, cert.Height, cert.BlockID.Short(), id.Short())
	}
	var rs []exec.Receipt
	if err := encoding.UnmarshalLax(tx.Bucket(bucketReceipts).Get(key), &rs); err != nil {
		return add("receipts %d: %v", h, err)
	}
	if len(rs) != len(b.Txs) {
		return add("receipts %d: %d for %d transactions", h, len(rs), len(b.Txs))
	}
	return false
}
