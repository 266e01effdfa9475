package crosschain

import (
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/spv"
)

// The client record at "lc/<chain>" keeps only its latest root; every verified
// root lives under its own key "lcroots/<chain>/<height>" (the last spv.MaxRoots of
// them), so an update writes a few hundred bytes instead of rewriting the whole
// window, and a proof reads only the root it needs.

// record returns c as stored at LCKey: with its latest root only.
func record(c *spv.ClientState) spv.ClientState {
	r := *c
	r.Roots = []spv.ConsensusState{c.Roots[len(c.Roots)-1]}
	return r
}

// clientAt reads the light client of chainID with its root at height, if the
// client verified that height and it is still in the window.
func clientAt(st transform.State, chainID string, height uint64) (*spv.ClientState, error) {
	c, err := loadClient(st, chainID)
	if err != nil || height == c.Height {
		return c, err
	}
	var cs spv.ConsensusState
	found, err := st.Get(LCRootKey(chainID, height), &cs)
	if err != nil {
		return nil, err
	}
	if found {
		c.Roots = append([]spv.ConsensusState{cs}, c.Roots...)
	}
	return c, nil
}

// loadClient reads the light client of chainID.
func loadClient(st transform.State, chainID string) (*spv.ClientState, error) {
	var c spv.ClientState
	found, err := st.Get(LCKey(chainID), &c)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %w of chain %q", transform.ErrNotFound, ErrNoClient, chainID)
	}
	return &c, nil
}

// clientMemo keeps the light clients (each with its root at one height) that
// the steps of one Batch read, and what it found of each client's state: a
// batch of a hundred decides reads the same client a hundred times, and
// decoding it was a thirtieth of a validator's work. It lives for one
// Batch.Apply, whose steps (prepare, decide, finish) never write a client; its
// clients are never modified. A nil *clientMemo keeps nothing.
type clientMemo struct {
	at       map[lcAt]*spv.ClientState
	inactive map[string]string // chain -> inactive's answer
}

func newClientMemo() *clientMemo {
	return &clientMemo{at: map[lcAt]*spv.ClientState{}, inactive: map[string]string{}}
}

// lcAt names a light client with its root at one height.
type lcAt struct {
	chain  string
	height uint64
}

// verifyRemote checks that key holds p.Value at p.Height of chainID, as known to
// this chain's light client of it. memo, when not nil, serves and keeps the
// clients read.
func verifyRemote(st transform.State, memo *clientMemo, chainID, key string, p *Proof) error {
	if p.Proof == nil {
		return fmt.Errorf("%w: %w: no state proof for %q", transform.ErrInvalid, ErrMalformed, key)
	}
	var c *spv.ClientState
	if memo != nil {
		c = memo.at[lcAt{chainID, p.Height}]
	}
	if c == nil {
		var err error
		if c, err = clientAt(st, chainID, p.Height); err != nil {
			return err
		}
		if memo != nil {
			memo.at[lcAt{chainID, p.Height}] = c
		}
	}
	if c.Frozen {
		return fmt.Errorf("%w: %w: client of %q", transform.ErrInvalid, spv.ErrFrozen, chainID)
	}
	if err := c.VerifyMembership(p.Height, key, p.Value, p.Proof); err != nil {
		return fmt.Errorf("%w: %w: %q at height %d of %q: %w", transform.ErrInvalid, ErrBadProof, key, p.Height, chainID, err)
	}
	return nil
}

// inactive returns why the light client of chainID on this chain, self, can
// verify nothing, or "" when it can: the client is missing or frozen. (spv
// clients do not expire: a client is active from lc/create until
// lc/misbehaviour freezes it.) memo, when not nil, serves and keeps the
// answers.
func inactive(st transform.State, memo *clientMemo, self, chainID string) (string, error) {
	if memo != nil {
		if why, ok := memo.inactive[chainID]; ok {
			return why, nil
		}
	}
	why := ""
	c, err := loadClient(st, chainID)
	switch {
	case errors.Is(err, ErrNoClient):
		why = fmt.Sprintf("no light client of chain %q on %s", chainID, self)
	case err != nil:
		return "", err
	case c.Frozen:
		why = fmt.Sprintf("the light client of chain %q on %s is frozen", chainID, self)
	}
	if memo != nil {
		memo.inactive[chainID] = why
	}
	return why, nil
}

// LCCreate starts a light client of another chain from a trusted header and the
// validator set that signs the header after it. The admin role calls it.
type LCCreate struct {
	ChainID string        `cbor:"1,keyasint" json:"chain_id"`
	Header  header.Header `cbor:"2,keyasint" json:"header"`
	NextSet valset.Set    `cbor:"3,keyasint" json:"next_set"`

	client *spv.ClientState
}

// Keys implements transform.Transform.
func (t *LCCreate) Keys(*transform.Context) (r, w []string) {
	return nil, []string{LCKey(t.ChainID), LCRootKey(t.ChainID, t.Header.Height)}
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *LCCreate) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *LCCreate) Verify(ctx *transform.Context, st transform.State) error {
	if err := CheckChainID(t.ChainID); err != nil {
		return fmt.Errorf("%w: %w", transform.ErrInvalid, err)
	}
	if t.ChainID == ctx.ChainID {
		return fmt.Errorf("%w: %w: a chain keeps no light client of itself", transform.ErrInvalid, ErrWrongChain)
	}
	if t.Header.ChainID != t.ChainID {
		return fmt.Errorf("%w: %w: header of %q for the client of %q", transform.ErrInvalid, ErrWrongChain, t.Header.ChainID, t.ChainID)
	}
	found, err := st.Get(LCKey(t.ChainID), new(spv.ClientState))
	if err != nil {
		return err
	}
	if found {
		return fmt.Errorf("%w: %w: %q", transform.ErrInvalid, ErrClientExists, t.ChainID)
	}
	c, err := spv.NewClient(t.ChainID, t.Header, t.NextSet)
	if err != nil {
		return fmt.Errorf("%w: %w", transform.ErrInvalid, err)
	}
	t.client = c
	return nil
}

// Apply implements transform.Transform.
func (t *LCCreate) Apply(_ *transform.Context, st transform.State) error {
	return storeClient(st, t.client)
}

// storeClient writes c's record and its latest root.
func storeClient(st transform.State, c *spv.ClientState) error {
	latest := c.Roots[len(c.Roots)-1]
	if err := st.Set(LCRootKey(c.ChainID, latest.Height), latest); err != nil {
		return err
	}
	return st.Set(LCKey(c.ChainID), record(c))
}

// LCUpdate advances the light client of ChainID to Header, certified by Cert
// (commit votes of the set the client trusts for that height), and learns NextSet,
// the set that signs the header after it. Members of the relayer role call it.
// A header at or below the client's height fails with ErrStaleUpdate before any
// signature is checked, so duplicate updates from several relays cost little.
type LCUpdate struct {
	ChainID string                `cbor:"1,keyasint" json:"chain_id"`
	Header  header.Header         `cbor:"2,keyasint" json:"header"`
	Cert    consensus.Certificate `cbor:"3,keyasint" json:"cert"`
	NextSet valset.Set            `cbor:"4,keyasint" json:"next_set"`

	client *spv.ClientState
}

// Keys implements transform.Transform.
func (t *LCUpdate) Keys(*transform.Context) (r, w []string) {
	w = []string{LCKey(t.ChainID), LCRootKey(t.ChainID, t.Header.Height)}
	if old, ok := evicted(t.Header.Height); ok {
		w = append(w, LCRootKey(t.ChainID, old))
	}
	return nil, w
}

// evicted is the root height an update to height leaves the window.
func evicted(height uint64) (uint64, bool) {
	if height <= spv.MaxRoots {
		return 0, false
	}
	return height - spv.MaxRoots, true
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *LCUpdate) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *LCUpdate) Verify(_ *transform.Context, st transform.State) error {
	c, err := loadClient(st, t.ChainID)
	if err != nil {
		return err
	}
	if c.Frozen {
		return fmt.Errorf("%w: %w: client of %q", transform.ErrInvalid, spv.ErrFrozen, t.ChainID)
	}
	if t.Header.Height <= c.Height {
		return fmt.Errorf("%w: %w: header %d of %q, client is at %d", transform.ErrInvalid, ErrStaleUpdate, t.Header.Height, t.ChainID, c.Height)
	}
	n, err := c.Update(t.Header, t.Cert, t.NextSet)
	if err != nil {
		return fmt.Errorf("%w: update client of %q to %d: %w", transform.ErrInvalid, t.ChainID, t.Header.Height, err)
	}
	t.client = n
	return nil
}

// Apply implements transform.Transform.
func (t *LCUpdate) Apply(_ *transform.Context, st transform.State) error {
	if old, ok := evicted(t.Header.Height); ok {
		if err := st.Delete(LCRootKey(t.ChainID, old)); err != nil {
			return err
		}
	}
	return storeClient(st, t.client)
}

// LCMisbehaviour freezes the light client of ChainID given two valid certificates
// for different headers at one height; the client keeps the evidence and verifies
// nothing more. Members of the relayer role call it.
type LCMisbehaviour struct {
	ChainID  string           `cbor:"1,keyasint" json:"chain_id"`
	Evidence spv.Misbehaviour `cbor:"2,keyasint" json:"evidence"`

	client *spv.ClientState
}

// Keys implements transform.Transform.
func (t *LCMisbehaviour) Keys(*transform.Context) (r, w []string) {
	return []string{LCRootKey(t.ChainID, t.Evidence.Height)}, []string{LCKey(t.ChainID)}
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *LCMisbehaviour) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *LCMisbehaviour) Verify(_ *transform.Context, st transform.State) error {
	c, err := clientAt(st, t.ChainID, t.Evidence.Height)
	if err != nil {
		return err
	}
	if c.Frozen {
		return fmt.Errorf("%w: %w: client of %q", transform.ErrInvalid, spv.ErrFrozen, t.ChainID)
	}
	n, err := c.CheckMisbehaviour(t.Evidence)
	if err != nil {
		return fmt.Errorf("%w: misbehaviour of %q: %w", transform.ErrInvalid, t.ChainID, err)
	}
	t.client = n
	return nil
}

// Apply implements transform.Transform.
func (t *LCMisbehaviour) Apply(_ *transform.Context, st transform.State) error {
	return st.Set(LCKey(t.ChainID), record(t.client))
}
