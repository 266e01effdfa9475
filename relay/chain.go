package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/tx"
)

// Chain is what the relay needs of one chain's nodes. *client.Client, over a
// chain's HTTP gateways, is the one the daemon uses; the crosschain
// simulation gives the relay chains of its own.
type Chain interface {
	Status(ctx context.Context) (*gateway.Status, error)
	Nonces(ctx context.Context, addr crypto.Address) (*gateway.NonceInfo, error)
	// SubmitBatch admits txs in order without waiting for commits: one error
	// per transaction (nil when admitted), or an error for the whole request.
	SubmitBatch(ctx context.Context, txs []*tx.Tx) ([]error, error)
	State(ctx context.Context, height uint64, key string, prove bool) (*client.StateResult, error)
	States(ctx context.Context, height uint64, keys []string, prove bool) ([]*client.StateResult, error)
	Block(ctx context.Context, height uint64) (*gateway.BlockResponse, error)
	Header(ctx context.Context, height uint64) (*gateway.HeaderResponse, error)
	// WatchBlocks streams the heights of committed blocks until ctx ends or
	// the stream breaks.
	WatchBlocks(ctx context.Context) (<-chan uint64, error)
}

var _ Chain = (*client.Client)(nil)

// chainState is what the relay tracks of one chain.
type chainState struct {
	id     string
	c      Chain
	height uint64
	time   int64 // latest block time, Unix ms
	// nonce is the relayer's next nonce here; nonceOK false forces a re-read.
	nonce     uint64
	nonceOK   bool
	committed uint64 // the relayer's committed nonce, last read
	// seen mirrors committed and epoch counts nonce resyncs, for due(), which
	// runs in workers without mu.
	seen, epoch atomic.Uint64
	// batchOK says whether the chain's RBAC policy lets the relayer send
	// xchain/batch, as of batchChecked (checkBatch).
	batchOK      bool
	batchChecked time.Time
	stuckSince   time.Time
	// stuckHeight is the chain's height at stuckSince.
	stuckHeight uint64
	// mu guards the nonce and the outbox, which workers fill during a pass.
	mu     sync.Mutex
	outbox []outStep
	// sent holds the relayer's signed transactions by nonce until their nonce
	// is committed, so that a stall resends the very same transactions (a
	// node answers a pending one as harmless) instead of signing new ones
	// over nonces still in flight.
	sent map[uint64]*tx.Tx
}

// pathState tracks dest's light client of source.
type pathState struct {
	src, dst *chainState
	// client is the light client's committed height; sent the highest header
	// submitted (committed or not).
	client, sent uint64
	progress     time.Time // when client last advanced
	refreshed    time.Time // when updates were last queued on this path
	// sentNonce and sentEpoch are the dest nonce and nonce epoch of the update
	// to sent, once a node admitted it: while it is in flight, a slow chain is
	// not taken for a lost update.
	sentNonce, sentEpoch uint64
	sentAdmitted         bool
}

// provable is the highest source height whose root dest has or will have before
// the relay's next transaction there executes.
func (p *pathState) provable() uint64 { return max(p.client, p.sent) }
