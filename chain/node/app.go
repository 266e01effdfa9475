package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/tx"
)

// MaxClockDrift is how far ahead of a validator's clock a proposed block's time may
// be before the validator refuses it.
const MaxClockDrift = 5_000

// app adapts the chain to consensus.App: it builds proposals from the mempool and
// checks proposals by re-executing them, keeping each executed outcome so the
// decided block is committed without executing it again.
type app struct {
	n *Node

	mu       sync.Mutex
	outcomes map[hash.Hash]*executed // by block ID, for the current height
}

type executed struct {
	block *block.Block
	out   *block.Outcome
}

func (a *app) reset() {
	a.mu.Lock()
	a.outcomes = map[hash.Hash]*executed{}
	a.mu.Unlock()
}

func (a *app) remember(b *block.Block, out *block.Outcome) hash.Hash {
	id := b.Header.Hash()
	a.mu.Lock()
	if a.outcomes == nil {
		a.outcomes = map[hash.Hash]*executed{}
	}
	a.outcomes[id] = &executed{block: b, out: out}
	a.mu.Unlock()
	return id
}

// candidateTx returns a transaction of a candidate block of this height, or
// nil. A scan: it serves only fetches that missed the mempool, which are rare,
// so no index is kept on the path of every validated block.
func (a *app) candidateTx(id hash.Hash) *tx.Tx {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ex := range a.outcomes {
		if t := txIn(ex.block, id); t != nil {
			return t
		}
	}
	return nil
}

func (a *app) outcome(id hash.Hash) *executed {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.outcomes[id]
}

// Pending implements consensus.Pender: an idle chain waits for transactions
// instead of making empty blocks at full speed.
func (a *app) Pending() bool { return a.n.pool.Len() > 0 }

// Backlog implements consensus.Backlogger: a full block is waiting.
func (a *app) Backlog() bool {
	return a.n.pool.Len() >= a.n.blockLimit() || a.n.pool.Bytes() >= a.n.cfg.MaxBlockBytes
}

// Propose implements consensus.App.
func (a *app) Propose(height uint64, round uint32) ([]byte, hash.Hash, error) {
	n := a.n
	if height != n.height()+1 {
		return nil, hash.Hash{}, fmt.Errorf("propose height %d, committed %d", height, n.height())
	}
	prev := n.lastHeader()
	now := n.clock()
	if prev != nil && now < prev.Time {
		now = prev.Time
	}
	txs := n.pool.Reap(n.blockLimit(), n.cfg.MaxBlockBytes, n.nonces())
	sigs := make([]error, len(txs)) // the mempool admits only verified transactions
	start := time.Now()
	var last *consensus.Certificate
	if height > 1 && n.countsAbsence() {
		last = n.parent.cert
	}
	b, out, err := block.Build(n.exec, n.state, prev, n.cfg.ChainID, now, txs, sigs, last)
	if err != nil {
		return nil, hash.Hash{}, fmt.Errorf("build block %d: %w", height, err)
	}
	n.budget.observe(time.Since(start), len(txs))
	for _, r := range out.Rejected {
		// Rejected transactions would never leave the pool; clients asking for
		// one are told why it was dropped.
		n.pool.Drop(r.TxID, "rejected by the executor: "+r.Error)
	}
	b.Header.Proposer = n.address
	out.Header.Proposer = n.address
	raw, err := b.Encode()
	if err != nil {
		return nil, hash.Hash{}, err
	}
	return raw, a.remember(b, out), nil
}

// Validate implements consensus.App.
func (a *app) Validate(height uint64, raw []byte) (hash.Hash, error) {
	n := a.n
	b, err := n.decodeBlock(raw)
	if err != nil {
		return hash.Hash{}, err
	}
	id := b.Header.Hash()
	if a.outcome(id) != nil {
		return id, nil
	}
	if b.Header.Height != height || height != n.height()+1 {
		return hash.Hash{}, fmt.Errorf("%w: block for height %d at height %d", block.ErrInvalid, b.Header.Height, height)
	}
	if b.Header.Time > n.clock()+MaxClockDrift {
		return hash.Hash{}, fmt.Errorf("%w: block time %d is ahead of this node's clock", block.ErrInvalid, b.Header.Time)
	}
	if err := n.verifyTxs(b.Txs); err != nil {
		return hash.Hash{}, err
	}
	start := time.Now()
	out, err := block.Check(n.exec, n.state, n.lastHeader(), b, make([]error, len(b.Txs)))
	if err != nil {
		return hash.Hash{}, err
	}
	n.budget.observe(time.Since(start), len(b.Txs))
	return a.remember(b, out), nil
}

// envelope wraps a consensus message on the gossip topics. Pubsub drops identical
// bytes for minutes (message ID = hash of the data), which would silence the
// machine's periodic rebroadcasts; the sequence number makes each send distinct.
// It carries no authority: every vote and proposal inside is signed.
type envelope struct {
	Msg []byte `cbor:"1,keyasint"`
	Seq uint64 `cbor:"2,keyasint"`
	// Block, when set, is the compact form of the proposal's or decided
	// block, whose bytes Msg then leaves out (see compact.go).
	Block *compactBlock `cbor:"3,keyasint,omitempty"`
}

// encodeMsg wraps a consensus message in a fresh envelope, with its block in
// compact form when this node holds the block decoded (its own proposal, a
// candidate it validated, the block it just committed).
func (n *Node) encodeMsg(m *consensus.Message, committed *block.Block) []byte {
	e := envelope{Seq: n.seq.Add(1)}
	var id hash.Hash
	var c consensus.Message
	switch {
	case m.Proposal != nil && len(m.Proposal.Block) > 0:
		p := *m.Proposal
		p.Block, id, c.Proposal = nil, p.BlockID, &p
	case m.Decided != nil && len(m.Decided.Block) > 0:
		d := *m.Decided
		d.Block, id, c.Decided = nil, d.Cert.BlockID, &d
	}
	var b *block.Block
	switch {
	case c.Proposal == nil && c.Decided == nil: // a vote, or a message without a block
	case committed != nil && committed.Header.Hash() == id:
		b = committed
	default:
		if ex := n.app.outcome(id); ex != nil {
			b = ex.block
		}
	}
	if b != nil {
		if cb, err := compact(b); err == nil {
			e.Msg, e.Block = encoding.MustMarshal(&c), cb
			return encoding.MustMarshal(&e)
		}
	}
	e.Msg = encoding.MustMarshal(m)
	return encoding.MustMarshal(&e)
}

// decodeMsg opens an envelope and decodes the message inside; a compact block
// is returned beside it, for the caller to rebuild.
func decodeMsg(data []byte) (*consensus.Message, *compactBlock, error) {
	// Envelope and message are transport wrappers: what matters inside is signed
	// and checked on its own (votes, proposals, the block's canonical encoding), so
	// they skip the canonical re-encoding, which costs a copy of a whole block.
	var e envelope
	if err := encoding.UnmarshalLax(data, &e); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", consensus.ErrBadMessage, err)
	}
	var m consensus.Message
	if err := encoding.UnmarshalLax(e.Msg, &m); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", consensus.ErrBadMessage, err)
	}
	if err := m.Check(); err != nil {
		return nil, nil, err
	}
	return &m, e.Block, nil
}

// verifyTxs checks the signatures of txs, reusing verdicts already reached
// (transactions that passed the mempool), in one batch over all cores.
func (n *Node) verifyTxs(txs []*tx.Tx) error {
	var todo []*tx.Tx
	var idx []int
	for i, t := range txs {
		id, err := t.ID()
		if err != nil {
			return fmt.Errorf("transaction %d: %w", i, err)
		}
		if n.pool.Has(id) {
			continue
		}
		todo = append(todo, t)
		idx = append(idx, i)
	}
	for j, err := range tx.VerifyProofs(todo) {
		if err != nil {
			return fmt.Errorf("%w: transaction %d: %v", block.ErrInvalid, idx[j], err)
		}
	}
	return nil
}

// decodedCache is a small bounded map from gossip message ID (SHA-256 of its bytes)
// to the message the topic validator decoded.
type decodedCache struct {
	mu sync.Mutex
	m  map[[32]byte]*consensus.Message
}

const maxDecoded = 1024

func (c *decodedCache) put(id [32]byte, m *consensus.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxDecoded {
		c.m = make(map[[32]byte]*consensus.Message) // forget everything: it is only a shortcut
	}
	c.m[id] = m
}

func (c *decodedCache) take(id [32]byte) (*consensus.Message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.m[id]
	delete(c.m, id)
	return m, ok
}
