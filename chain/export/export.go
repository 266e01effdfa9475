// Package export writes and reads a state export: the whole state of a chain at
// one committed height H, with the block header of H, its commit certificate and
// the validator sets that make the file check itself. It is what a chain that lost
// its quorum restarts from under a new chain id (`plug node export`, then `plug
// genesis from-export`; docs/operator.md, "Recovery when fewer than a quorum
// survive").
//
// The file is JSON Lines, format "plug-export/1" (docs/genesis.md): the first line
// is the Header, each further line one Entry {"key": ..., "value": base64}, in key
// order. The writer puts nothing in it that depends on who wrote it or when, so two
// nodes that exported the same height from the same certificate write the same
// bytes; nodes that hold different certificates of the same block (other vote
// subsets) differ only in the certificate, and compare by HeaderHash and StateRoot.
//
// Verify checks a file completely: the entries hash to the header's state root,
// the header is the one the certificate certifies, and the certificate carries a
// quorum of the validator set that signed H, the set the header's ValidatorsHash
// commits to (consensus.Certificate.Verify, the check light clients use).
package export

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// Format is the value of Header.Format this package writes and reads.
const Format = "plug-export/1"

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrFormat: not a state export of this format, or malformed.
	ErrFormat = errors.New("export: bad format")
	// ErrMismatch: the parts of the export do not agree with each other (the
	// entries do not hash to the state root, the header is not the certified
	// one, a validator set is not the one the header names): it was changed or
	// damaged after it was written.
	ErrMismatch = errors.New("export: inconsistent")
	// ErrCertificate: the commit certificate does not carry a quorum of the
	// validator set that signed the height.
	ErrCertificate = errors.New("export: bad certificate")
)

// Header is the first line of an export.
type Header struct {
	// Format is always Format.
	Format string `json:"format"`
	// ChainID and GenesisHash name the exported chain.
	ChainID     string    `json:"chain_id"`
	GenesisHash hash.Hash `json:"genesis_hash"`
	// Height is H, the committed height whose state follows.
	Height uint64 `json:"height"`
	// StateRoot is the block header's state root: the entries hash to it.
	StateRoot hash.Hash `json:"state_root"`
	// HeaderHash is Block.Hash(), the block's identity.
	HeaderHash hash.Hash `json:"header_hash"`
	// Entries is the number of entries that follow.
	Entries uint64 `json:"entries"`
	// Block is the header of H.
	Block header.Header `json:"block_header"`
	// Certificate is the commit certificate of H.
	Certificate consensus.Certificate `json:"certificate"`
	// Signers is the validator set that signed H (Block.ValidatorsHash).
	Signers valset.Set `json:"signers"`
	// Validators is the validator set in the state at H, the one that would
	// have signed H+1 (Block.NextValidatorsHash).
	Validators valset.Set `json:"validators"`
}

// Entry is one key of the state and its value (canonical CBOR, as stored).
type Entry struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// Write writes hdr, then the entries each yields (in strictly increasing key
// order), and checks that they are hdr.Entries many and hash to hdr.StateRoot: a
// source that missed or changed a key is an error, and the caller must discard
// what was written. progress, if set, is called after every entry written.
func Write(w io.Writer, hdr *Header, each func(yield func(key string, value []byte) error) error, progress func(n uint64)) error {
	n := hdr.Entries
	h := *hdr
	h.Format = Format
	bw := bufio.NewWriterSize(w, 1<<20)
	line, err := json.Marshal(&h)
	if err != nil {
		return fmt.Errorf("export: header: %w", err)
	}
	bw.Write(append(line, '\n'))
	leaves := make([]proof.StateLeafOf, 0, n)
	var last string
	var wrote uint64
	err = each(func(key string, value []byte) error {
		if wrote > 0 && key <= last {
			return fmt.Errorf("export: key %q after %q: keys must come in increasing order", key, last)
		}
		last = key
		line, err := json.Marshal(Entry{Key: key, Value: value})
		if err != nil {
			return fmt.Errorf("export: key %q: %w", key, err)
		}
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return err
		}
		leaves = append(leaves, proof.StateLeafOf{Path: proof.KeyPath(key), ValueHash: proof.ValueHash(value)})
		wrote++
		if progress != nil {
			progress(wrote)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if wrote != n {
		return fmt.Errorf("%w: %d entries written, the header says %d", ErrMismatch, wrote, n)
	}
	if root := proof.StateRoot(leaves); root != hdr.StateRoot {
		return fmt.Errorf("%w: the %d entries hash to %s, not the state root %s of height %d", ErrMismatch, n, root, hdr.StateRoot, hdr.Height)
	}
	return bw.Flush()
}

// Read reads an export; it checks the syntax, not the content (Verify does).
func Read(r io.Reader) (*Header, []Entry, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	line, err := br.ReadBytes('\n')
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, nil, fmt.Errorf("%w: no header line: %v", ErrFormat, err)
	}
	var h Header
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, nil, fmt.Errorf("%w: header line: %v", ErrFormat, err)
	}
	if h.Format != Format {
		return nil, nil, fmt.Errorf("%w: format %q, want %q (a newer plug may read it)", ErrFormat, h.Format, Format)
	}
	entries := make([]Entry, 0, min(h.Entries, 1<<20))
	for lineNo := 2; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var e Entry
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				return nil, nil, fmt.Errorf("%w: line %d: %v", ErrFormat, lineNo, err)
			}
			entries = append(entries, e)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("export: line %d: %w", lineNo, err)
		}
	}
	return &h, entries, nil
}

// ReadFile reads the export at path and returns the SHA-256 of the file's bytes
// (hex) with it, which a genesis that imports it names.
func ReadFile(path string) (*Header, []Entry, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, "", fmt.Errorf("export: %w", err)
	}
	defer f.Close()
	sum := sha256.New()
	h, entries, err := Read(io.TeeReader(f, sum))
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return h, entries, hex.EncodeToString(sum.Sum(nil)), nil
}

// FileSHA256 returns the SHA-256 of the file at path, in hex.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("export: %w", err)
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return "", fmt.Errorf("export: read %s: %w", path, err)
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

// Verify checks that an export is whole and certified: its parts agree (header,
// heights, chain id, state root, entry count), the entries are in increasing key
// order and hash to the state root, the validator sets are the ones the block
// header commits to (and the state's validator set is Validators), and the
// certificate certifies the header with a quorum of Signers.
func Verify(h *Header, entries []Entry) error {
	if h.Format != Format {
		return fmt.Errorf("%w: format %q, want %q", ErrFormat, h.Format, Format)
	}
	b := &h.Block
	switch {
	case h.Height == 0:
		return fmt.Errorf("%w: height 0 has no certificate; export a committed height >= 1", ErrFormat)
	case b.ChainID != h.ChainID || b.Height != h.Height:
		return fmt.Errorf("%w: the block header is of chain %q height %d, the export says %q height %d", ErrMismatch, b.ChainID, b.Height, h.ChainID, h.Height)
	case b.StateRoot != h.StateRoot:
		return fmt.Errorf("%w: the block header's state root is %s, the export says %s", ErrMismatch, b.StateRoot, h.StateRoot)
	case b.Hash() != h.HeaderHash:
		return fmt.Errorf("%w: the block header hashes to %s, the export says %s", ErrMismatch, b.Hash(), h.HeaderHash)
	case uint64(len(entries)) != h.Entries:
		return fmt.Errorf("%w: %d entries, the header says %d", ErrMismatch, len(entries), h.Entries)
	}
	leaves := make([]proof.StateLeafOf, len(entries))
	var stateSet []byte
	for i, e := range entries {
		if e.Key == "" || i > 0 && e.Key <= entries[i-1].Key {
			return fmt.Errorf("%w: entry %d (key %q) is empty or out of order", ErrFormat, i, e.Key)
		}
		if e.Key == validator.SetKey {
			stateSet = e.Value
		}
		leaves[i] = proof.StateLeafOf{Path: proof.KeyPath(e.Key), ValueHash: proof.ValueHash(e.Value)}
	}
	if root := proof.StateRoot(leaves); root != h.StateRoot {
		return fmt.Errorf("%w: the %d entries hash to %s, not the state root %s of height %d: the export was changed or is incomplete",
			ErrMismatch, len(entries), root, h.StateRoot, h.Height)
	}
	if err := h.Signers.Check(); err != nil {
		return fmt.Errorf("%w: signers: %v", ErrMismatch, err)
	}
	if got := h.Signers.Hash(); got != b.ValidatorsHash {
		return fmt.Errorf("%w: the signers hash to %s, the header's validators hash is %s", ErrMismatch, got, b.ValidatorsHash)
	}
	if err := h.Validators.Check(); err != nil {
		return fmt.Errorf("%w: validators: %v", ErrMismatch, err)
	}
	if got := h.Validators.Hash(); got != b.NextValidatorsHash {
		return fmt.Errorf("%w: the validators hash to %s, the header's next validators hash is %s", ErrMismatch, got, b.NextValidatorsHash)
	}
	var inState valset.Set
	if stateSet == nil {
		return fmt.Errorf("%w: the state has no %q key", ErrMismatch, validator.SetKey)
	}
	if err := encoding.UnmarshalLax(stateSet, &inState); err != nil || inState.Hash() != b.NextValidatorsHash {
		return fmt.Errorf("%w: the state's validator set is not the header's next validator set", ErrMismatch)
	}
	c := &h.Certificate
	if c.BlockID != h.HeaderHash || c.Height != h.Height || c.ChainID != h.ChainID {
		return fmt.Errorf("%w: the certificate is for block %s at height %d of %q, not this header", ErrCertificate, c.BlockID.Short(), c.Height, c.ChainID)
	}
	if err := c.Verify(h.ChainID, h.Signers); err != nil {
		return fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	return nil
}
