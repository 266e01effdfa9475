package crosschain_test

// One simulated chain of the consensus simulation (consensus_sim_test.go): its
// validators, each with its own bbolt state store, executor, mempool and
// consensus.Machine, the App that builds and checks blocks with them, the relay's
// follower node, and the seeded network between them (delay, loss, duplication,
// partitions, crashes with restart from disk, Byzantine validators).

import (
	"container/heap"
	"errors"
	"fmt"
	"os"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/evidence"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/crosschain"
)

const (
	// xMaxBlockTxs bounds a proposal, as node.Config.MaxBlockTxs does.
	xMaxBlockTxs = 500
	// xMaxClockDrift is node.MaxClockDrift: how far ahead of a validator's clock a
	// proposed block's time may be.
	xMaxClockDrift = 5_000
)

// byzKind is how a validator misbehaves.
type byzKind int

const (
	honestNode byzKind = iota
	// equivocator: now and then a conflicting signed twin of a vote or proposal
	// to half of its peers (a nil vote for a block, a vote for a block that does
	// not exist, another valid block).
	equivocator
	// splitter: every proposal of its own goes as block X to even-numbered peers and
	// as another valid block Y to odd-numbered ones, and every vote for X or Y as a
	// vote for X to the evens and for Y to the odds. With less than a third of the
	// power it can only delay; with more it forks the chain (the broken variant).
	splitter
	// forger: half of its proposals are invalid: a header whose state root commits
	// to a state where mallory is rich, or a block carrying a transfer out of
	// alice's account that mallory signed.
	forger
)

func (k byzKind) String() string {
	return [...]string{"honest", "equivocator", "splitter", "forger"}[k]
}

// cnode is one validator of a chain, or (key nil) the full node the relays read.
type cnode struct {
	c    *cchain
	idx  int
	key  crypto.PrivateKey // nil: the follower, which votes never
	addr crypto.Address
	byz  byzKind
	path string

	store *state.Store
	reg   *transform.Registry
	ex    *exec.Executor
	pool  *mempool.Pool
	app   *capp
	m     *consensus.Machine

	// What survives a crash besides the state file: the persisted consensus state
	// and the block store (blocks, headers, certificates and validator sets by
	// height; index 0 is genesis).
	persisted *consensus.State
	blocks    [][]byte
	headers   []header.Header
	certs     []consensus.Certificate
	nextSets  []valset.Set // [h]: the set that signs height h+1

	crashed bool // a single-validator crash
	down    bool // the whole chain is down (a halt)
	wake    int64
	// aheadSince is when the node first heard a peer speak of the next height
	// while it was still at this one (0: not since its last commit).
	aheadSince int64
}

func (n *cnode) alive() bool { return !n.crashed && !n.down }

func (n *cnode) honest() bool { return n.byz == honestNode }

func (n *cnode) name() string {
	if n.key == nil {
		return fmt.Sprintf("%s/follower", n.c.id)
	}
	return fmt.Sprintf("%s/v%d", n.c.id, n.idx)
}

// height is the last committed height.
func (n *cnode) height() uint64 { return uint64(len(n.headers) - 1) }

func (n *cnode) last() *header.Header {
	if n.height() == 0 {
		return nil
	}
	return &n.headers[n.height()]
}

// parentCert is what n's next block carries on a chain that counts absent
// validators: the certificate n committed its last block with.
func (n *cnode) parentCert() *consensus.Certificate {
	if n.c.sc.absent == 0 || n.height() == 0 {
		return nil
	}
	c := n.certs[n.height()]
	return &c
}

// Nonce implements mempool.NonceReader on the committed state.
func (n *cnode) Nonce(a crypto.Address) (uint64, error) {
	var v uint64
	raw, ok, err := n.store.Get(exec.NonceKey(a))
	if err != nil || !ok {
		return 0, err
	}
	return v, encoding.UnmarshalLax(raw, &v)
}

// Get implements validator.Getter on the committed state.
func (n *cnode) Get(key string, dst any) (bool, error) {
	raw, ok, err := n.store.Get(key)
	if err != nil || !ok {
		return false, err
	}
	return true, encoding.UnmarshalLax(raw, dst)
}

// cchain is one chain: its nodes, its network and the harness view relays use.
type cchain struct {
	x     *xsim
	idx   int
	id    string
	sc    netScenario
	nodes []*cnode // the validators, then the follower
	doc   *genesis.Doc
	view  *chain // the harness chain of harness_test.go, backed by the follower
	set   valset.Set

	// Agreement: the first block committed at each height by an honest node and
	// the state root after it (index h-1).
	ids   []hash.Hash
	roots []hash.Hash

	// Clients: the transactions they signed, by ID, and those not yet committed.
	byTx        map[hash.Hash]*pending
	parts       map[*pending][]*pending // a batch's steps, until it commits
	nonces      map[crypto.Address]uint64
	outstanding []outTx
	// sent are the shipped relay's transactions handed to the validators.
	sent map[hash.Hash]bool

	split     *xpartition // a halt by partition, while active
	haltUntil int64       // a halt (down or split) lasts until then (sim ms); 0: none
	pairs     map[hash.Hash]blockPair
	twins     map[hash.Hash][2]*consensus.Message // by the signed message's hash
	// reported are the offenders (and the highest height) each honest validator
	// submitted equivocation evidence against, as chain/node does.
	reported map[crypto.Address]map[crypto.Address]uint64
	// evidence are those submissions, until they commit.
	evidence []*pending
}

// outTx is a transaction a client signed and keeps re-sending until it commits.
type outTx struct {
	t   *tx.Tx
	id  hash.Hash
	sig error
	p   *pending
}

// blockPair is what colluding splitters show: X to even peers, Y to odd ones.
type blockPair struct {
	even, odd hash.Hash
}

type xpartition struct {
	from, to int64
	side     []bool
}

type xcrash struct {
	node     int
	at, back int64
}

// netScenario is a chain's seeded network and validators.
type netScenario struct {
	validators int
	powers     []uint64
	byz        map[int]byzKind
	minDelay   int64
	maxDelay   int64
	loss, dup  float64
	partitions []xpartition // relative to the start of the chaos phase
	crashes    []xcrash     // likewise
	stagger    int64
	newHeight  int64
	// absent is the chain's Accountability.AbsentHeights (0: the rule is off).
	absent uint64
}

// xsimGenesis is the genesis of harness_test.go's newChain (roles, assets,
// balances) with the simulation's validators; unchecked adds the broken variant's
// transform for everyone.
func xsimGenesis(id string, vals []crypto.PrivateKey, powers []uint64, unchecked bool) *genesis.Doc {
	doc := &genesis.Doc{ChainID: id, GenesisTime: "2023-11-14T22:13:20Z"}
	var members []string
	for i, k := range vals {
		members = append(members, k.Public().Address().String())
		doc.Validators = append(doc.Validators, genesis.Validator{Name: fmt.Sprintf("val-%d", i), PubKey: genesis.FromPublicKey(k.Public()), Power: powers[i]})
	}
	doc.Roles = []genesis.Role{
		{Name: "admin", Members: []string{addr(admin).String()}, Transforms: []string{
			rbac.TypeSetRole, rbac.TypeGrant, rbac.TypeRevoke, asset.TypeCreate, asset.TypeIssue, asset.TypeBurn, crosschain.TypeLCCreate,
		}},
		{Name: "relayer", Members: []string{addr(relayer).String(), addr(mallory).String()}, Transforms: crosschain.RelayerTransforms},
		{Name: "trader", Members: []string{addr(alice).String(), addr(bob).String(), addr(carol).String()}, Transforms: []string{
			crosschain.TypePrepare, crosschain.TypeDecide, crosschain.TypeFinish,
		}},
		{Name: "public", Public: true, Transforms: []string{asset.TypeTransfer}},
		{Name: "validator", Members: members, Transforms: []string{evidence.TypeEquivocation}},
	}
	if unchecked {
		doc.Roles = append(doc.Roles, genesis.Role{Name: "anyone", Public: true, Transforms: []string{typeUncheckedFinish}})
	}
	for _, a := range assets {
		bal := map[string]uint64{}
		for _, p := range parties {
			bal[addr(p).String()] = funds
		}
		doc.Assets = append(doc.Assets, genesis.Asset{Name: a, Issuer: "admin", Balances: bal})
	}
	return doc
}

func (c *cchain) registry() *transform.Registry {
	reg := app.Registry()
	if c.x.sc.unchecked {
		reg.MustRegister(typeUncheckedFinish, &uncheckedFinish{})
	}
	return reg
}

// open opens (or, after a crash, reopens) the node's state file and builds its
// executor, mempool, App and machine; a fresh node's state gets the genesis.
func (c *cchain) open(n *cnode, restart bool) error {
	st, err := state.Open(n.path, state.WithNoSync(), state.WithNodeCache(10_000))
	if err != nil {
		return err
	}
	n.store = st
	n.reg = c.registry()
	ms := app.Models()
	if !restart {
		if err := c.doc.Validate(n.reg); err != nil {
			return err
		}
		if _, err := genesis.Init(st, c.doc, ms); err != nil {
			return err
		}
		set, err := validator.Load(n)
		if err != nil {
			return err
		}
		n.headers, n.certs, n.blocks, n.nextSets = make([]header.Header, 1), make([]consensus.Certificate, 1), make([][]byte, 1), []valset.Set{set}
	}
	// Invariant 6: the state file holds exactly the blocks committed before the crash.
	if v := st.Version(); v != n.height()+1 {
		return fmt.Errorf("%s: state at version %d after %d committed blocks", n.name(), v, n.height())
	}
	n.ex = exec.New(n.reg, ms, exec.WithWorkers(1))
	n.pool = mempool.New(mempool.ChainID(c.id))
	n.app = &capp{n: n, outcomes: map[hash.Hash]*xexecuted{}}
	t := consensus.DefaultTimeouts()
	t.Stagger, t.NewHeight = c.sc.stagger, c.sc.newHeight
	n.m = consensus.New(consensus.Config{ChainID: c.id, Signer: n.key, Timeouts: t}, n.app)
	h := n.height() + 1
	if restart && n.persisted != nil && n.persisted.Height == h {
		n.m.Restore(n.persisted, n.nextSets[h-1], c.x.now)
	} else {
		n.m.NewHeight(h, n.nextSets[h-1], c.x.now)
	}
	n.wake, n.aheadSince = -1, 0
	return nil
}

// crash kills a node: its machine, mempool and caches are gone; its state file,
// block store and persisted consensus state stay.
func (c *cchain) crash(n *cnode) {
	c.x.tracef(c, "%s crashes", n.name())
	if n.store != nil {
		_ = n.store.Close()
	}
	n.store, n.ex, n.pool, n.app, n.m = nil, nil, nil, nil, nil
	n.wake = -1
}

// restart boots a crashed node from its disk.
func (c *cchain) restart(n *cnode) {
	c.x.stats.restarts++
	c.x.tracef(c, "%s restarts at height %d", n.name(), n.height()+1)
	if err := c.open(n, true); err != nil {
		c.x.fail("%s: restart: %v", n.name(), err)
		return
	}
	// Its mempool is empty: the clients re-send what has not committed.
	c.resend(n)
	c.x.drain(c, n)
}

// xexecuted is a block this node executed, kept until its height is decided.
type xexecuted struct {
	b   *block.Block
	out *block.Outcome
}

// capp is a node's consensus.App: Propose builds a block from the mempool with the
// real executor, Validate re-executes a proposal and checks its header, in the way
// chain/node's app does.
type capp struct {
	n        *cnode
	outcomes map[hash.Hash]*xexecuted
}

// Pending implements consensus.Pender. The follower never proposes and waits for
// its peers.
func (a *capp) Pending() bool { return a.n.key != nil && a.n.pool.Len() > 0 }

// Backlog implements consensus.Backlogger.
func (a *capp) Backlog() bool { return a.n.key != nil && a.n.pool.Len() >= xMaxBlockTxs }

func (a *capp) remember(b *block.Block, out *block.Outcome) hash.Hash {
	id := b.Header.Hash()
	a.outcomes[id] = &xexecuted{b: b, out: out}
	return id
}

// Propose implements consensus.App.
func (a *capp) Propose(height uint64, round uint32) ([]byte, hash.Hash, error) {
	n := a.n
	if height != n.height()+1 {
		return nil, hash.Hash{}, fmt.Errorf("propose height %d, committed %d", height, n.height())
	}
	prev := n.last()
	now := T0 + n.c.x.now
	if prev != nil && now < prev.Time {
		now = prev.Time
	}
	txs := n.pool.Reap(xMaxBlockTxs, 0, n)
	b, out, err := block.Build(n.ex, n.store, prev, n.c.id, now, txs, make([]error, len(txs)), n.parentCert())
	if err != nil {
		return nil, hash.Hash{}, err
	}
	if len(b.Txs) < len(txs) {
		kept := map[*tx.Tx]bool{}
		for _, t := range b.Txs {
			kept[t] = true
		}
		for _, t := range txs {
			if id, err := t.ID(); err == nil && !kept[t] {
				n.pool.Remove(id)
			}
		}
	}
	b.Header.Proposer, out.Header.Proposer = n.addr, n.addr
	if n.byz == forger && n.c.x.rnet.IntN(2) == 0 {
		if f := n.c.forge(n, b); f != nil {
			b = f
			raw, err := b.Encode()
			return raw, b.Header.Hash(), err
		}
	}
	raw, err := b.Encode()
	if err != nil {
		return nil, hash.Hash{}, err
	}
	return raw, a.remember(b, out), nil
}

// Validate implements consensus.App.
func (a *capp) Validate(height uint64, raw []byte) (hash.Hash, error) {
	n := a.n
	b, err := block.Decode(raw)
	if err != nil {
		return hash.Hash{}, err
	}
	id := b.Header.Hash()
	if a.outcomes[id] != nil {
		return id, nil
	}
	if b.Header.Height != height || height != n.height()+1 {
		return hash.Hash{}, fmt.Errorf("%w: block for height %d at height %d", block.ErrInvalid, b.Header.Height, height)
	}
	if b.Header.Time > T0+n.c.x.now+xMaxClockDrift {
		return hash.Hash{}, fmt.Errorf("%w: block time %d is ahead of this node's clock", block.ErrInvalid, b.Header.Time)
	}
	sigs, err := n.verify(b.Txs)
	if err != nil {
		return hash.Hash{}, err
	}
	out, err := block.Check(n.ex, n.store, n.last(), b, sigs)
	if err != nil {
		return hash.Hash{}, err
	}
	return a.remember(b, out), nil
}

// verify checks the signatures of the transactions not in the node's mempool
// (those passed the check when they were added), as chain/node does.
func (n *cnode) verify(txs []*tx.Tx) ([]error, error) {
	sigs := make([]error, len(txs))
	var todo []*tx.Tx
	var idx []int
	for i, t := range txs {
		id, err := t.ID()
		if err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
		if !n.pool.Has(id) {
			todo = append(todo, t)
			idx = append(idx, i)
		}
	}
	for j, err := range tx.VerifyProofs(todo) {
		if err != nil {
			return nil, fmt.Errorf("%w: transaction %d: %v", block.ErrInvalid, idx[j], err)
		}
	}
	return sigs, nil
}

// forge turns b, a valid block of forger n, into an invalid one.
func (c *cchain) forge(n *cnode, b *block.Block) *block.Block {
	f := *b
	if c.x.rnet.IntN(2) == 0 {
		// A header committing to the executed state plus a billion USD for mallory.
		res, err := n.ex.Execute(n.store, exec.Env{ChainID: c.id, Height: b.Header.Height, Time: b.Header.Time}, b.Txs, make([]error, len(b.Txs)))
		if err != nil {
			return nil
		}
		ch := append(res.Changes, state.Change{Key: asset.BalanceKey("USD", addr(mallory)), Value: encoding.MustMarshal(uint64(1_000_000_000))})
		batch, err := n.store.Stage(ch)
		if err != nil {
			return nil
		}
		f.Header.StateRoot = batch.Root()
		c.x.stats.forgedRoots++
		return &f
	}
	// A transfer out of alice's account signed by mallory, with a consistent tx root.
	nonce, _ := n.Nonce(addr(alice))
	t, err := tx.New(n.reg, c.id, &asset.Transfer{Asset: "USD", From: addr(alice), To: addr(mallory), Amount: funds}, tx.Signer{Key: alice.Public(), Nonce: nonce})
	if err != nil {
		return nil
	}
	msg, _ := t.SignBytes()
	sig, _ := mallory.Sign(msg)
	t.Proofs = []tx.Proof{{Signature: sig}}
	f.Txs = append(append([]*tx.Tx(nil), b.Txs...), t)
	if f.Header.TxRoot, err = block.TxRoot(f.Txs); err != nil {
		return nil
	}
	c.x.stats.forgedTxs++
	return &f
}

// altBlock is another valid block for n's next height: empty, a millisecond later.
func (c *cchain) altBlock(n *cnode, height uint64, time int64) (*block.Block, []byte) {
	if n.store == nil || height != n.height()+1 {
		return nil, nil
	}
	b, _, err := block.Build(n.ex, n.store, n.last(), c.id, time+1, nil, []error{}, n.parentCert())
	if err != nil {
		return nil, nil
	}
	b.Header.Proposer = n.addr
	raw, err := b.Encode()
	if err != nil {
		return nil, nil
	}
	return b, raw
}

// byzantine returns what n sends for msg to even- and to odd-numbered peers.
// Unless -xsim.votecap, every vote or proposal has one fixed twin, so a
// Byzantine validator signs at most two conflicting messages per vote; with it,
// twins are drawn afresh on every send (see the flag).
func (c *cchain) byzantine(n *cnode, msg *consensus.Message) (even, odd *consensus.Message) {
	var k hash.Hash
	switch {
	case msg.Vote != nil:
		k = hash.Sum("plug/xsim-twin", msg.Vote.SignBytes())
	case msg.Proposal != nil:
		k = hash.Sum("plug/xsim-twin", msg.Proposal.SignBytes())
	default:
		return msg, msg
	}
	if !*flagXSimVoteCap {
		if tw, ok := c.twins[k]; ok {
			return tw[0], tw[1]
		}
	}
	even, odd = c.twinOf(n, msg)
	c.twins[k] = [2]*consensus.Message{even, odd}
	return even, odd
}

func (c *cchain) twinOf(n *cnode, msg *consensus.Message) (even, odd *consensus.Message) {
	x := c.x
	switch n.byz {
	case equivocator:
		if x.rnet.IntN(2) == 0 {
			return msg, msg
		}
		switch {
		case msg.Vote != nil:
			v := *msg.Vote
			if v.IsNil() {
				v.BlockID = hash.Sum("plug/xsim-bogus", []byte{byte(x.rnet.IntN(256))})
			} else {
				v.BlockID = hash.Hash{}
			}
			v.Signature, _ = n.key.Sign(v.SignBytes())
			x.stats.equivocations++
			return msg, &consensus.Message{Vote: &v}
		case msg.Proposal != nil:
			if tw := c.twin(n, msg.Proposal); tw != nil {
				x.stats.equivocations++
				return msg, &consensus.Message{Proposal: tw}
			}
		}
	case splitter:
		switch {
		case msg.Proposal != nil:
			if tw := c.twin(n, msg.Proposal); tw != nil {
				c.pairs[msg.Proposal.BlockID] = blockPair{even: msg.Proposal.BlockID, odd: tw.BlockID}
				c.pairs[tw.BlockID] = c.pairs[msg.Proposal.BlockID]
				x.stats.equivocations++
				return msg, &consensus.Message{Proposal: tw}
			}
		case !msg.Vote.IsNil():
			v := msg.Vote
			pr, ok := c.pairs[v.BlockID]
			if !ok {
				// Someone else's block: support it to the evens, nil to the odds.
				pr = blockPair{even: v.BlockID}
			}
			x.stats.equivocations++
			return c.revote(n, v, pr.even), c.revote(n, v, pr.odd)
		}
	}
	return msg, msg
}

// twin is a conflicting signed proposal of n for p's height and round.
func (c *cchain) twin(n *cnode, p *consensus.Proposal) *consensus.Proposal {
	b, raw := c.altBlock(n, p.Height, T0+c.x.now)
	if b == nil {
		return nil
	}
	tw := *p
	tw.Block, tw.BlockID, tw.POLRound, tw.POL = raw, b.Header.Hash(), -1, nil
	tw.Signature, _ = n.key.Sign(tw.SignBytes())
	return &tw
}

// revote is v signed again for block id (the same vote when it already is).
func (c *cchain) revote(n *cnode, v *consensus.Vote, id hash.Hash) *consensus.Message {
	if v.BlockID == id {
		return &consensus.Message{Vote: v}
	}
	w := *v
	w.BlockID = id
	w.Signature, _ = n.key.Sign(w.SignBytes())
	return &consensus.Message{Vote: &w}
}

// connected reports whether the network carries messages from node a to node b now.
func (c *cchain) connected(a, b int) bool {
	x := c.x
	if x.healed {
		return true
	}
	if p := c.split; p != nil && p.side[a] != p.side[b] {
		return false
	}
	for _, p := range c.sc.partitions {
		if x.now >= x.chaosStart+p.from && x.now < x.chaosStart+p.to && p.side[a] != p.side[b] {
			return false
		}
	}
	return true
}

// send schedules the delivery of msg from node a to node b under the network's faults.
func (c *cchain) send(a, b int, msg *consensus.Message) {
	x := c.x
	if !c.connected(a, b) {
		return
	}
	copies := 1
	if !x.healed {
		if x.rnet.Float64() < c.sc.loss {
			return
		}
		if x.rnet.Float64() < c.sc.dup {
			copies = 2
		}
	}
	for i := 0; i < copies; i++ {
		d := c.sc.minDelay + x.rnet.Int64N(c.sc.maxDelay-c.sc.minDelay+1)
		x.push(&xevent{at: x.now + d, chain: c.idx, node: b, msg: msg})
	}
}

// commit applies a decided (or synced) block to n: state, block store, mempool,
// the agreement log and, for the follower, the relays' view.
func (c *cchain) commit(n *cnode, raw []byte, cert consensus.Certificate) bool {
	x := c.x
	h := n.height() + 1
	if err := cert.Verify(c.id, n.nextSets[h-1]); err != nil {
		x.fail("%s: height %d decided with a bad certificate: %v", n.name(), h, err)
		return false
	}
	b, err := block.Decode(raw)
	if err != nil {
		x.fail("SAFETY: %s: decided block %d does not decode: %v", n.name(), h, err)
		return false
	}
	id := b.Header.Hash()
	if id != cert.BlockID || cert.Height != h {
		x.fail("%s: certificate of %s at %d for block %s at %d", n.name(), cert.BlockID.Short(), cert.Height, id.Short(), h)
		return false
	}
	e := n.app.outcomes[id]
	if e == nil {
		sigs, err := n.verify(b.Txs)
		var out *block.Outcome
		if err == nil {
			out, err = block.Check(n.ex, n.store, n.last(), b, sigs)
		}
		if err != nil {
			x.fail("SAFETY: %s: committed an invalid block at height %d: %v", n.name(), h, err)
			return false
		}
		e = &xexecuted{b: b, out: out}
	}
	if err := n.store.Commit(e.out.Batch); err != nil {
		x.fail("%s: commit block %d: %v", n.name(), h, err)
		return false
	}
	if root := n.store.Root(); root != b.Header.StateRoot {
		x.fail("SAFETY: %s: block %d executes to state root %s, its header says %s", n.name(), h, root.Short(), b.Header.StateRoot.Short())
		return false
	}
	n.blocks = append(n.blocks, raw)
	n.headers = append(n.headers, b.Header)
	n.certs = append(n.certs, cert)
	n.nextSets = append(n.nextSets, e.out.NextValidators)
	n.app.outcomes = map[hash.Hash]*xexecuted{}
	n.pool.Update(h, b.Txs, n)
	n.aheadSince = 0
	x.record("commit %s h%d %s r%d t%d", n.name(), h, id.Short(), cert.Round, x.now)
	x.tracef(c, "%s commits h%d %s (round %d, proposer %s)", n.name(), h, id.Short(), cert.Round, c.nameOf(b.Header.Proposer))
	if n.honest() {
		switch {
		case int(h) > len(c.ids):
			c.ids = append(c.ids, id)
			c.roots = append(c.roots, b.Header.StateRoot)
			if cert.Round > 0 {
				x.stats.laterRounds++
			}
		case c.ids[h-1] != id:
			x.fail("SAFETY: %s committed block %s at height %d, another honest node committed %s", n.name(), id.Short(), h, c.ids[h-1].Short())
			return false
		case c.roots[h-1] != b.Header.StateRoot:
			x.fail("SAFETY: %s has state root %s at height %d, another honest node %s", n.name(), b.Header.StateRoot.Short(), h, c.roots[h-1].Short())
			return false
		}
	}
	if n.key == nil {
		if !c.checkAbsence(b, n.nextSets[h-1], e.out.NextValidators) {
			return false
		}
		v := c.view
		v.headers = append(v.headers, b.Header)
		v.certs = append(v.certs, cert)
		v.nextSets = append(v.nextSets, e.out.NextValidators)
		v.time = b.Header.Time
		v.blocks = append(v.blocks, b)
		for _, r := range e.out.Receipts {
			if p := c.byTx[r.TxID]; p != nil && !p.done {
				p.outcome(r, c.parts[p])
				delete(c.parts, p)
			}
			if rt := v.raw[r.TxID]; rt != nil {
				rt.p.outcome(r, rt.parts)
				delete(v.raw, r.TxID)
			}
		}
		v.mem.Update(h, b.Txs, v)
	}
	return true
}

// checkAbsence re-derives the absence rule from the committed blocks' parent
// certificates: a validator that leaves the set at block b must be missing from
// the last sc.absent certificates (those of heights h-1 down to h-absent, carried
// by b and its ancestors), and one missing from all of them, in the signing set
// of each, leaves unless it holds the chain's last power. before signed b;
// after signs its child.
func (c *cchain) checkAbsence(b *block.Block, before, after valset.Set) bool {
	k, h := c.sc.absent, b.Header.Height
	if k == 0 {
		return true
	}
	v := c.view
	for _, val := range before {
		// Certificates exist from height 1 on (block 2 carries block 1's).
		missing, member := h > k, true
		for j := uint64(0); missing && j < k; j++ {
			lc := b.LastCert // the certificate of height h-1-j, carried by block h-j
			if j > 0 {
				lc = v.blocks[h-j].LastCert
			}
			if lc == nil {
				c.x.fail("ABSENCE: %s: block %d carries no parent certificate", c.id, h-j)
				return false
			}
			if v.nextSets[h-2-j].Find(val.Address) < 0 {
				member = false
			}
			for _, vote := range lc.Votes {
				if vote.Validator == val.Address {
					missing = false
				}
			}
		}
		left := after.Find(val.Address) < 0
		switch {
		case left && !missing:
			c.x.fail("ABSENCE: %s: %s left the set at block %d but signed one of the last %d certificates", c.id, c.nameOf(val.Address), h, k)
			return false
		case !left && missing && member && before.TotalPower() > val.Power:
			c.x.fail("ABSENCE: %s: %s missing from the last %d certificates at block %d but keeps its power", c.id, c.nameOf(val.Address), k, h)
			return false
		case left:
			c.x.stats.absent++
			c.x.tracef(c, "%s unstaked for absence at block %d", c.nameOf(val.Address), h)
		}
	}
	return true
}

// sync copies the certified blocks n misses from the most advanced peer it can
// reach, checking each certificate and re-executing each block, as block sync does.
func (c *cchain) sync(n *cnode) {
	var best *cnode
	for _, p := range c.nodes {
		if p != n && p.alive() && c.connected(n.idx, p.idx) && (best == nil || p.height() > best.height()) {
			best = p
		}
	}
	if best == nil || best.height() <= n.height() {
		return
	}
	c.x.stats.syncs++
	for n.height() < best.height() {
		h := n.height() + 1
		if !c.commit(n, best.blocks[h], best.certs[h]) {
			return
		}
	}
	n.m.NewHeight(n.height()+1, n.nextSets[n.height()], c.x.now)
}

// report has honest validator n submit evidence of two conflicting votes, once
// per offender and height, signed with its key at the next nonce it tracks, to
// every live validator's mempool.
func (c *cchain) report(n *cnode, ev consensus.Evidence) {
	if ev.VoteA == nil || ev.VoteB == nil {
		return
	}
	off := ev.VoteA.Validator
	if c.reported == nil {
		c.reported = map[crypto.Address]map[crypto.Address]uint64{}
	}
	seen := c.reported[n.addr]
	if seen == nil {
		seen = map[crypto.Address]uint64{}
		c.reported[n.addr] = seen
	}
	if h, ok := seen[off]; ok && h >= ev.VoteA.Height {
		return
	}
	seen[off] = ev.VoteA.Height
	p := &pending{tr: evidence.New(ev.VoteA, ev.VoteB, ""), signer: n.key, label: fmt.Sprintf("evidence against %s by %s", c.nameOf(off), n.name())}
	t, err := tx.New(n.reg, c.id, p.tr, tx.Signer{Key: n.key.Public(), Nonce: c.nonces[n.addr]})
	if err == nil {
		err = t.Sign(n.key)
	}
	if err != nil {
		c.x.fail("%s: %s: %v", c.id, p.label, err)
		return
	}
	c.nonces[n.addr]++
	id, _ := t.ID()
	c.byTx[id] = p
	c.evidence = append(c.evidence, p)
	c.outstanding = append(c.outstanding, outTx{t: t, id: id, sig: tx.VerifyProofs([]*tx.Tx{t})[0], p: p})
	c.x.record("tx %s %s %s", c.id, p.label, id.Short())
	c.x.stats.reports++
	for _, v := range c.nodes {
		c.resend(v)
	}
}

// resend gives n every transaction the clients still wait on.
func (c *cchain) resend(n *cnode) {
	if n.key == nil || !n.alive() {
		return
	}
	for _, o := range c.outstanding {
		if !n.pool.Has(o.id) {
			_, _ = n.pool.Add(o.t, o.sig, n)
		}
	}
}

// xevent is a message delivery, a timer tick (msg nil) or a crash/restart.
type xevent struct {
	at    int64
	seq   uint64
	chain int
	node  int
	msg   *consensus.Message
	kind  int // 0 message or tick, 1 crash, 2 restart
}

type xqueue []*xevent

func (q xqueue) Len() int { return len(q) }
func (q xqueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q xqueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *xqueue) Push(v any)   { *q = append(*q, v.(*xevent)) }
func (q *xqueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (x *xsim) push(e *xevent) {
	x.seq++
	e.seq = x.seq
	heap.Push(&x.q, e)
}

// drain carries out n's Ready: persist, then send, then apply decisions.
func (x *xsim) drain(c *cchain, n *cnode) {
	for n.m != nil && !x.stopped() {
		rd := n.m.Ready()
		if rd.Persist != nil {
			n.persisted = rd.Persist // "fsync": before any message goes out
		}
		for i := range rd.Messages {
			even, odd := &rd.Messages[i], &rd.Messages[i]
			if !n.honest() {
				even, odd = c.byzantine(n, &rd.Messages[i])
			}
			for _, p := range c.nodes {
				if p == n {
					continue
				}
				if p.idx%2 == 0 {
					c.send(n.idx, p.idx, even)
				} else {
					c.send(n.idx, p.idx, odd)
				}
			}
		}
		x.stats.evidence += len(rd.Evidence)
		if n.honest() && n.key != nil {
			for _, ev := range rd.Evidence {
				c.report(n, ev)
			}
		}
		if rd.Behind > 0 {
			c.sync(n)
		}
		for _, d := range rd.Decisions {
			if d.Height != n.height()+1 {
				continue // sync got there first
			}
			if !c.commit(n, d.Block, d.Cert) {
				return
			}
			if n.honest() && n.key != nil && n.headers[d.Height].Proposer == n.addr {
				// As chain/node does: the proposer publishes the block for followers
				// (a Byzantine one keeps it to itself).
				msg := &consensus.Message{Decided: &consensus.Decided{Cert: d.Cert, Block: d.Block}}
				for _, p := range c.nodes {
					if p != n {
						c.send(n.idx, p.idx, msg)
					}
				}
			}
			n.m.NewHeight(d.Height+1, n.nextSets[d.Height], x.now)
		}
		if rd.Persist == nil && len(rd.Messages) == 0 && len(rd.Decisions) == 0 && rd.Behind == 0 {
			break
		}
	}
	x.schedule(c, n)
}

func (x *xsim) schedule(c *cchain, n *cnode) {
	if n.m == nil {
		return
	}
	at := max(n.m.NextDeadline(), x.now+1)
	if n.key == nil {
		// A machine without a signer never moves its rebroadcast time, so its
		// NextDeadline stays in the past: poll it, as chain/node's ticker does.
		at = max(at, x.now+50)
	}
	if n.wake >= 0 && n.wake <= at {
		return
	}
	n.wake = at
	x.push(&xevent{at: at, chain: c.idx, node: n.idx})
}

// xLagSync is how long a node hears of the next height before the driver syncs it.
const xLagSync = 3_000

// msgHeight is the height a consensus message is about.
func msgHeight(m *consensus.Message) uint64 {
	switch {
	case m.Vote != nil:
		return m.Vote.Height
	case m.Proposal != nil:
		return m.Proposal.Height
	case m.Decided != nil:
		return m.Decided.Cert.Height
	}
	return 0
}

// handle runs one event.
func (x *xsim) handle(e *xevent) {
	c := x.chains[e.chain]
	n := c.nodes[e.node]
	switch e.kind {
	case 1:
		if !x.healed && n.alive() {
			n.crashed = true
			c.crash(n)
		}
		return
	case 2:
		if n.crashed {
			n.crashed = false
			if n.alive() {
				c.restart(n)
			}
		}
		return
	}
	if !n.alive() {
		return
	}
	if e.msg != nil && msgHeight(e.msg) == n.m.Height()+1 && n.aheadSince == 0 {
		n.aheadSince = x.now
	}
	if e.msg == nil {
		if n.wake != e.at {
			return // superseded
		}
		n.wake = -1
		n.m.Tick(x.now)
		if !*flagXSimNoLagSync && n.aheadSince > 0 && x.now-n.aheadSince >= xLagSync {
			// See flagXSimNoLagSync: the driver syncs a node that peers have
			// left one height behind.
			n.aheadSince = 0
			h := n.height()
			c.sync(n)
			if n.height() > h {
				x.stats.lagSyncs++
			}
		}
	} else if err := n.m.Receive(e.msg); err != nil && e.msg.Proposal != nil && errors.Is(err, consensus.ErrBadMessage) {
		x.stats.refusedProposals++
		x.tracef(c, "%s refuses proposal: %v", n.name(), err)
	}
	if xtrace != "" && (xtrace == "all" || xtrace == c.id) {
		x.traceEvent(c, n, e)
	}
	x.drain(c, n)
}

// runFor runs the networks of every chain for ms simulated milliseconds.
func (x *xsim) runFor(ms int64) {
	end := x.now + ms
	for x.q.Len() > 0 && x.q[0].at <= end && !x.stopped() {
		e := heap.Pop(&x.q).(*xevent)
		x.now = e.at
		x.events++
		x.handle(e)
	}
	x.now = end
}

// xtrace is PLUG_XSIM_TRACE: "all" or a chain id prints that chain's events.
var xtrace = os.Getenv("PLUG_XSIM_TRACE")

func (x *xsim) tracef(c *cchain, format string, args ...any) {
	if xtrace != "" && (xtrace == "all" || xtrace == c.id) {
		fmt.Printf("%7d %s\n", x.now, fmt.Sprintf(format, args...))
	}
}

func (x *xsim) traceEvent(c *cchain, n *cnode, e *xevent) {
	what := "tick"
	switch m := e.msg; {
	case m == nil:
	case m.Vote != nil:
		what = fmt.Sprintf("%s h%d r%d %s from %s", m.Vote.Type, m.Vote.Height, m.Vote.Round, m.Vote.BlockID.Short(), c.nameOf(m.Vote.Validator))
	case m.Proposal != nil:
		what = fmt.Sprintf("proposal h%d r%d pol%d %s from %s", m.Proposal.Height, m.Proposal.Round, m.Proposal.POLRound, m.Proposal.BlockID.Short(), c.nameOf(m.Proposal.Proposer))
	case m.Decided != nil:
		what = fmt.Sprintf("decided h%d %s", m.Decided.Cert.Height, m.Decided.Cert.BlockID.Short())
	}
	lr, lid := n.m.Locked()
	x.tracef(c, "%s(h%d r%d s%d lock %d/%s pool %d) <- %s", n.name(), n.m.Height(), n.m.Round(), n.m.Step(), lr, lid.Short(), n.pool.Len(), what)
}

func (c *cchain) nameOf(a crypto.Address) string {
	for _, n := range c.nodes {
		if n.addr == a && n.key != nil {
			return fmt.Sprintf("v%d", n.idx)
		}
	}
	return a.String()[:6]
}
