package consensus

import (
	"bytes"
	"errors"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/valset"
)

// idleApp proposes nothing and accepts nothing.
type idleApp struct{}

func (idleApp) Propose(uint64, uint32) ([]byte, hash.Hash, error) {
	return nil, hash.Hash{}, errors.New("idle")
}
func (idleApp) Validate(uint64, []byte) (hash.Hash, error) { return hash.Hash{}, errors.New("idle") }

// TestFollowerDeadlineAhead: a machine without a signer never casts a vote, so
// its next deadline must not be its (never updated) last cast plus the
// rebroadcast interval, which lies in the past and makes a driver that sleeps
// until the deadline spin.
func TestFollowerDeadlineAhead(t *testing.T) {
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	set := valset.Set{{Address: k.Public().Address(), PubKey: k.Public(), Power: 1}}
	m := New(Config{ChainID: "c"}, idleApp{})
	m.NewHeight(1, set, 1_000_000)
	for now := int64(1_000_000); now < 1_010_000; now += 777 {
		m.Tick(now)
		if d := m.NextDeadline(); d <= now {
			t.Fatalf("at %d the follower's next deadline is %d, in the past", now, d)
		}
	}
}
