package genesis

import (
	"testing"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/crosschain"
)

func TestCrosschainRoles(t *testing.T) {
	keys := []crypto.PublicKey{key1.Public(), key2.Public()}
	d := Default("beta", keys, acc1)
	reg := builtin.Registry()
	if err := d.Validate(reg); err != nil {
		t.Fatal(err)
	}
	ms := builtin.Models()
	st := openStore(t)
	if _, err := Init(st, d, ms); err != nil {
		t.Fatal(err)
	}
	p, err := rbac.Load(reader{st})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tr string
		by crypto.Address
	}{
		{crosschain.TypeLCCreate, acc1},
		{crosschain.TypeLCUpdate, acc1},
		{crosschain.TypeLCUpdate, key2.Public().Address()},
		{crosschain.TypeDecide, key1.Public().Address()},
		{crosschain.TypePrepare, acc2},
		{crosschain.TypeFinish, acc2},
	} {
		if err := p.Allow(c.tr, []crypto.Address{c.by}); err != nil {
			t.Errorf("%s by %s: %v", c.tr, c.by, err)
		}
	}
	if err := p.Allow(crosschain.TypeLCCreate, []crypto.Address{acc2}); err == nil {
		t.Error("anyone may create light clients")
	}
	if err := p.Allow(crosschain.TypeLCUpdate, []crypto.Address{acc2}); err == nil {
		t.Error("anyone may update light clients")
	}
}
