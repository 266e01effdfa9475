package node

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
)

// A node outside the validator set is refused by the validator; once the
// validator moves all its power to the node's key, the validator's allow
// list admits it from that block on, the node connects at its next retry,
// syncs and decides the chain alone, with no restart. The old validator,
// configured as the new one's peer, stays connected and follows.
func TestAllowListFollowsValidatorSet(t *testing.T) {
	tn := newTestNet(t, 1)
	tn.waitHeight(0, 2, 15*time.Second)

	key := seedKey(t, 50)
	nd, err := New(Config{Name: "new", Home: filepath.Join(t.TempDir(), "new"), Genesis: tn.gen, Key: key,
		Validator: true, P2PListen: "/ip4/127.0.0.1/tcp/0", Peers: tn.addrs[0],
		Registry: builtin.Registry(), Models: builtin.Models()})
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	time.Sleep(2 * time.Second)
	if h := nd.height(); h != 0 || nd.host.Connected(tn.nodes[0].host.ID()) {
		t.Fatalf("a node outside the set got in: height %d, connected %v", h, nd.host.Connected(tn.nodes[0].host.ID()))
	}

	old := tn.keys[0]
	x, err := tx.New(builtin.Registry(), "nodetest", &validator.TransferPower{To: key.Public().Address(), ToKey: key.Public(), Amount: 100},
		tx.Signer{Key: old.Public(), Nonce: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Sign(old); err != nil {
		t.Fatal(err)
	}
	id, err := tn.nodes[0].Submit(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	tn.waitTx(0, id, 15*time.Second)
	at := tn.nodes[0].height()

	// The new key alone holds the power: blocks after the transfer need the
	// new node, and the old one follows them.
	deadline := time.Now().Add(20 * time.Second)
	for nd.height() < at+3 || tn.nodes[0].height() < at+3 {
		if time.Now().After(deadline) {
			t.Fatalf("after the transfer at %d: new node at %d, old at %d", at, nd.height(), tn.nodes[0].height())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if set := nd.currentSet(); len(set) != 1 || set[0].Address != key.Public().Address() {
		t.Fatalf("set %+v", set)
	}
}
