package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
)

// TestConflictingAdmissionsLoserReported: two nodes admitted different
// transactions with one (signer, nonce) before gossip met. The one that commits
// wins; the other is not silent: the node that held it, and the node that
// refused it from gossip, both answer 410 dropped, naming the winner and its
// height; sent again, the winner answers its result and the loser its drop.
func TestConflictingAdmissionsLoserReported(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	tn := newTestNet(t, 4)
	for i := range tn.nodes {
		tn.waitHeight(i, 2, 30*time.Second)
	}
	bob, carol := seedKey(t, 98).Public().Address(), seedKey(t, 97).Public().Address()
	winner, loser := tn.transfer(0, bob, 10), tn.transfer(0, carol, 20)
	wid, _ := winner.ID()
	lid, _ := loser.ID()
	// Node 1 admitted the loser first, before any gossip could reach it (held
	// back from gossip, so that only the winner travels).
	if _, err := tn.nodes[1].pool.Add(loser, nil, tn.nodes[1].nonces()); err != nil {
		t.Fatal(err)
	}
	if st, err := tn.nodes[1].TxStatus(lid); err != nil || st.Status != gateway.TxPending {
		t.Fatalf("loser on node 1 before the block: %+v %v", st, err)
	}
	// Node 1 is where clients look for the loser: a gateway over it.
	srv := httptest.NewServer(gateway.New(tn.nodes[1]).Handler())
	defer srv.Close()
	cl, _ := client.New([]string{srv.URL}, client.WithChainID("nodetest"))
	if _, err := tn.nodes[0].Submit(context.Background(), winner); err != nil {
		t.Fatal(err)
	}
	tn.waitTx(0, wid, 20*time.Second)
	tn.waitTx(1, wid, 20*time.Second)
	h, _, _ := tn.nodes[0].store.TxLocation(wid)

	var dropped *client.DroppedError
	_, err := cl.TxResult(context.Background(), lid)
	if !errors.As(err, &dropped) || dropped.Status.By != wid || dropped.Status.Height != h ||
		!strings.Contains(dropped.Status.Reason, fmt.Sprintf("was used by transaction %s committed at height %d", wid, h)) {
		t.Fatalf("loser on the node that held it: %v", err)
	}
	// A node that refused the loser from gossip knows it lost too, once it was
	// offered it: here node 2 is offered it now, after the block (once it
	// has committed the block too: it may lag).
	tn.waitTx(2, wid, 20*time.Second)
	_, errs := tn.nodes[2].SubmitBatch(context.Background(), []*tx.Tx{loser, winner})
	if !errors.Is(errs[0], gateway.ErrNonceConflict) {
		t.Fatalf("loser sent to node 2 after the block: %v", errs[0])
	}
	if !errors.Is(errs[1], gateway.ErrCommitted) {
		t.Fatalf("winner sent again: %v", errs[1])
	}
	_, errs = tn.nodes[1].SubmitBatch(context.Background(), []*tx.Tx{loser})
	if !errors.Is(errs[0], gateway.ErrDropped) {
		t.Fatalf("loser sent again to the node that dropped it: %v", errs[0])
	}
	if got := balance(t, tn.nodes[1], carol); got != 0 {
		t.Fatalf("the loser moved %d", got)
	}
}

// TestGossipedConflictWatched: a node offered, by gossip, a transaction whose
// (signer, nonce) a pending one holds refuses it, and reports it dropped once
// the pending one commits.
func TestGossipedConflictWatched(t *testing.T) {
	tn := newTestNet(t, 1)
	tn.waitHeight(0, 1, 10*time.Second)
	bob := seedKey(t, 96).Public().Address()
	first, second := tn.transfer(0, bob, 1), tn.transfer(0, bob, 2)
	n := tn.nodes[0]
	if _, err := n.SubmitBatch(context.Background(), []*tx.Tx{first}); err[0] != nil {
		t.Fatal(err[0])
	}
	raw, _ := second.Encode()
	// The gossip validator accepts the batch (it forwards what it verified) but
	// the pool refuses the conflicting transaction and watches it.
	if err := n.validateTx("", encoding.MustMarshal([][]byte{raw})); err != nil {
		t.Fatalf("gossiped batch: %v", err)
	}
	sid, _ := second.ID()
	fid, _ := first.ID()
	tn.waitTx(0, fid, 10*time.Second)
	st, err := n.TxStatus(sid)
	if err != nil || st.Status != gateway.TxDropped || st.By != fid {
		t.Fatalf("gossiped loser: %+v %v", st, err)
	}
}

// TestStrictAdmission: a correctly signed transaction whose payload the executor
// cannot decode canonically — a negative integer, a float, a non-minimal
// integer — is refused at admission (400), all three with one nonce, and none
// is pending; a good one with that nonce is then admitted and commits.
func TestStrictAdmission(t *testing.T) {
	tn := newTestNet(t, 1)
	tn.waitHeight(0, 1, 10*time.Second)
	srv := httptest.NewServer(gateway.New(tn.nodes[0]).Handler())
	defer srv.Close()
	bob := seedKey(t, 95).Public().Address()
	good := tn.transfer(0, bob, 1)
	enc := []byte(good.Body.Payload)
	at := len(enc) - 1 // the amount, the payload's last field
	for name, payload := range map[string][]byte{
		"negative":    append(append([]byte{}, enc[:at]...), 0x20),
		"float":       append(append([]byte{}, enc[:at]...), 0xf9, 0x3c, 0x00),
		"non-minimal": append(append([]byte{}, enc[:at]...), 0x18, 0x01),
	} {
		x := tx.FromPayload("nodetest", asset.TypeTransfer, payload, tx.Signer{Key: tn.admin.Public(), Nonce: 0})
		if err := x.Sign(tn.admin); err != nil {
			t.Fatal(err)
		}
		raw, _ := x.Encode()
		resp, err := http.Post(srv.URL+"/v1/tx", "application/cbor", strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s payload: %d, want 400", name, resp.StatusCode)
		}
		id, _ := x.ID()
		if _, err := tn.nodes[0].TxStatus(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s payload left a trace in the mempool: %v", name, err)
		}
	}
	id, err := tn.nodes[0].Submit(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	tn.waitTx(0, id, 10*time.Second)
}

// partialProbe is a transform.Partial that reports its even parts skipped.
type partialProbe struct {
	Parts uint32 `cbor:"1,keyasint" json:"parts"`
}

func (p *partialProbe) Keys(*transform.Context) (r, w []string)            { return nil, []string{"probe/x"} }
func (p *partialProbe) Authorizations(*transform.Context) []crypto.Address { return nil }
func (p *partialProbe) Verify(*transform.Context, transform.State) error   { return nil }
func (p *partialProbe) Apply(_ *transform.Context, st transform.State) error {
	return st.Set("probe/x", uint64(p.Parts))
}
func (p *partialProbe) Skipped() []transform.Skip {
	var out []transform.Skip
	for i := uint32(0); i < p.Parts; i += 2 {
		out = append(out, transform.Skip{Part: i, Error: fmt.Sprintf("part %d already done", i)})
	}
	return out
}

// TestSkippedPartsInTxResult: the parts a partial transform skipped reach
// GET /v1/tx/{id}.
func TestSkippedPartsInTxResult(t *testing.T) {
	admin, val := seedKey(t, 200), seedKey(t, 1)
	gen := genesis.Default("nodetest", []crypto.PublicKey{val.Public()}, admin.Public().Address())
	for i := range gen.Roles {
		if gen.Roles[i].Name == "public" {
			gen.Roles[i].Transforms = append(gen.Roles[i].Transforms, "test/partial")
		}
	}
	reg, ms := builtin.Registry(), builtin.Models()
	reg.MustRegister("test/partial", &partialProbe{})
	ms.MustAdd(transform.Model{Name: "probe", Prefix: "probe/"})
	nd, err := New(Config{Name: "v", Home: t.TempDir(), Genesis: gen, Key: val, Validator: true,
		P2PListen: "/ip4/127.0.0.1/tcp/0", Registry: reg, Models: ms})
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	x, err := tx.New(reg, "nodetest", &partialProbe{Parts: 3}, tx.Signer{Key: admin.Public(), Nonce: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Sign(admin); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway.New(nd).Handler())
	defer srv.Close()
	cl, _ := client.New([]string{srv.URL})
	res, err := cl.Submit(context.Background(), x, true, 10*time.Second)
	if err != nil || res.Result == nil {
		t.Fatalf("submit: %+v %v", res, err)
	}
	var id hash.Hash = res.ID
	r, err := cl.TxResult(context.Background(), id)
	if err != nil || len(r.Skipped) != 2 || r.Skipped[1].Part != 2 || r.Skipped[1].Error != "part 2 already done" {
		t.Fatalf("skipped parts: %+v %v", r, err)
	}
}
