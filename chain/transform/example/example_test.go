package example_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform/example"
	"github.com/plugchain/plug/chain/tx"
)

// memState is a committed state in a map.
type memState map[string][]byte

func (m memState) Get(key string) ([]byte, bool, error) {
	v, ok := m[key]
	return v, ok, nil
}

// TestPublishThroughExecutor registers the transform the way a plug binary
// does (builtin.Extend), then runs a block through the executor: a publication
// by an oracle, a second within MaxMove, one moving too far, one by a signer
// without the role, and a malformed pair.
func TestPublishThroughExecutor(t *testing.T) {
	builtin.Extend(example.Register, example.AddModels)
	ex := builtin.Executor()
	reg := builtin.Registry()
	if _, err := reg.Name(&example.Publish{}); err != nil {
		t.Fatalf("oracle/publish not in the extended registry: %v", err)
	}

	key := func(seed byte) crypto.PrivateKey {
		k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	oracle, stranger := key(1), key(2)
	st := memState{
		rbac.RolesKey:          encoding.MustMarshal([]string{"oracle"}),
		rbac.RoleKey("oracle"): encoding.MustMarshal(rbac.Role{Transforms: []string{example.Type}}),
		rbac.MemberKey("oracle", oracle.Public().Address()): encoding.MustMarshal(true),
	}
	nonces := map[crypto.Address]uint64{}
	sign := func(k crypto.PrivateKey, p *example.Publish) *tx.Tx {
		a := k.Public().Address()
		tr, err := tx.New(reg, "example", p, tx.Signer{Key: k.Public(), Nonce: nonces[a]})
		if err != nil {
			t.Fatal(err)
		}
		nonces[a]++
		if err := tr.Sign(k); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	txs := []*tx.Tx{
		sign(oracle, &example.Publish{Pair: "EURUSD", Price: 10850}),
		sign(oracle, &example.Publish{Pair: "EURUSD", Price: 10870}),
		sign(oracle, &example.Publish{Pair: "EURUSD", Price: 30000}),
		sign(stranger, &example.Publish{Pair: "EURUSD", Price: 10000}),
		sign(oracle, &example.Publish{Pair: "eur", Price: 1}),
	}
	res, err := ex.Execute(st, exec.Env{ChainID: "example", Height: 7, Time: 1_700_000_000_000}, txs, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		code exec.Code
		msg  string
	}{
		{exec.OK, ""},
		{exec.OK, ""},
		{exec.Failed, "moves more than 50% from 10870"},
		{exec.Failed, "unauthorized"},
		{exec.Failed, "want six capital letters"},
	}
	for i, w := range want {
		r := res.Receipts[i]
		if r.Code != w.code || !strings.Contains(r.Error, w.msg) {
			t.Errorf("tx %d: %s %q, want %s containing %q", i, r.Code, r.Error, w.code, w.msg)
		}
	}
	var p example.Price
	found, err := res.Get(example.PriceKey("EURUSD"), &p)
	if err != nil || !found {
		t.Fatalf("price/EURUSD: found %v, %v", found, err)
	}
	if p.Price != 10870 || p.By != oracle.Public().Address() || p.Height != 7 || p.Time != 1_700_000_000_000 {
		t.Errorf("price/EURUSD = %+v", p)
	}
	// The model's schema refuses a zero price even from other code paths.
	if err := builtin.Models().Check(example.PriceKey("EURUSD"), example.Price{}); err == nil {
		t.Error("the price model accepted a zero price")
	}
}
