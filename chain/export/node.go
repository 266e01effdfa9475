package export

import (
	"fmt"
	"io"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/store"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// Source is a node's two databases, opened (read-only is enough), and the hash of
// the genesis the chain started from.
type Source struct {
	State       *state.Store
	Blocks      *store.Store
	GenesisHash hash.Hash
}

// Plan is an export of a height read into memory, ready to be written
// (Header.Entries counts the entries).
type Plan struct {
	Header  Header
	entries []Entry
}

// versionOf maps a height to its state version: the genesis state is version 1
// and the state after block h is version h+1 (chain/node keeps this rule).
func versionOf(height uint64) uint64 { return height + 1 }

// Prepare reads everything of height (0: the latest the node has both a block and
// its state of), the whole state included (it is held in memory), and checks
// that the node's state of that height is the one the header commits to.
func (s *Source) Prepare(height uint64) (*Plan, error) {
	top := s.Blocks.Height()
	if v := s.State.Version(); v < versionOf(top) {
		top = v - 1 // the last block was saved but its state not applied (a crash)
	}
	if height == 0 {
		height = top
	}
	switch {
	case height == 0:
		return nil, fmt.Errorf("export: the node has committed no block yet: there is no certified state to export")
	case height > top:
		return nil, fmt.Errorf("export: height %d is not committed on this node (its latest committed height with state is %d)", height, top)
	}
	hdr, err := s.Blocks.Header(height)
	if err != nil {
		return nil, fmt.Errorf("export: header of %d: %w", height, err)
	}
	cert, err := s.Blocks.Certificate(height)
	if err != nil {
		return nil, fmt.Errorf("export: certificate of %d: %w", height, err)
	}
	root, err := s.State.RootAt(versionOf(height))
	if err != nil {
		return nil, fmt.Errorf("export: state of %d: %w", height, err)
	}
	if root != hdr.StateRoot {
		return nil, fmt.Errorf("%w: the node's state of height %d has root %s, its block header %s: the home is damaged; export from another node",
			ErrMismatch, height, root, hdr.StateRoot)
	}
	signers, err := s.setAt(versionOf(height - 1))
	if err != nil {
		return nil, err
	}
	next, err := s.setAt(versionOf(height))
	if err != nil {
		return nil, err
	}
	p := &Plan{Header: Header{
		Format: Format, ChainID: hdr.ChainID, GenesisHash: s.GenesisHash, Height: height,
		StateRoot: hdr.StateRoot, HeaderHash: hdr.Hash(), Block: *hdr, Certificate: *cert,
		Signers: signers, Validators: next,
	}}
	err = s.State.IterateAt(versionOf(height), "", func(k string, v []byte) error {
		p.entries = append(p.entries, Entry{Key: k, Value: v})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export: read the state of %d: %w", height, err)
	}
	p.Header.Entries = uint64(len(p.entries))
	return p, nil
}

func (s *Source) setAt(version uint64) (valset.Set, error) {
	v, ok, err := s.State.GetAt(version, validator.SetKey)
	if err != nil {
		return nil, fmt.Errorf("export: validator set of version %d: %w", version, err)
	}
	var set valset.Set
	if ok {
		if err := encoding.UnmarshalLax(v, &set); err != nil {
			return nil, fmt.Errorf("export: validator set of version %d: %w", version, err)
		}
	}
	return set, nil
}

// Write writes the export to w (see the package Write).
func (p *Plan) Write(w io.Writer, progress func(n uint64)) error {
	each := func(yield func(string, []byte) error) error {
		for _, e := range p.entries {
			if err := yield(e.Key, e.Value); err != nil {
				return err
			}
		}
		return nil
	}
	return Write(w, &p.Header, each, progress)
}
