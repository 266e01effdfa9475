package genesis

import (
	"strings"
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
		{crosschain.TypeSetParams, acc1},
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
	if err := p.Allow(crosschain.TypeSetParams, []crypto.Address{acc2}); err == nil {
		t.Error("anyone may set the crosschain parameters")
	}
}

// withCrosschain is the example with a crosschain section on its line 18.
func withCrosschain(section string) string {
	return strings.Replace(example, "  ]\n}\n", "  ],\n  \"crosschain\": "+section+"\n}\n", 1)
}

// exampleHash is the example's genesis hash as it was before genesis files had
// a crosschain section: a file without one must keep its hash.
const exampleHash = "8d4a4a49748eaf290d3f6534d112e67c78b58a1599013687c6130821e9f5f425"

func TestCrosschainParams(t *testing.T) {
	plain := mustParse(t, example)
	if got := plain.Hash().String(); got != exampleHash {
		t.Fatalf("hash of a genesis without a crosschain section changed: %s, was %s", got, exampleHash)
	}
	ch, err := plain.Changes(builtin.Models())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ch {
		if c.Key == crosschain.ParamsKey {
			t.Fatal("a genesis without a crosschain section writes the parameters")
		}
	}

	d := mustParse(t, withCrosschain(`{"max_lock": "90m"}`))
	if err := d.Validate(builtin.Registry()); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	if _, err := Init(st, d, builtin.Models()); err != nil {
		t.Fatal(err)
	}
	var p crosschain.Params
	if found, err := (reader{st}).Get(crosschain.ParamsKey, &p); !found || err != nil || p.MaxLock != 90*60*1000 {
		t.Fatalf("params %+v (found %t, %v), want a max lock of 90 minutes in ms", p, found, err)
	}
	if d.Hash() == plain.Hash() {
		t.Fatal("the crosschain section does not change the hash")
	}
	if same := mustParse(t, withCrosschain(`{"max_lock": "5400s"}`)); same.Hash() != d.Hash() {
		t.Fatal("90m and 5400s hash differently")
	}
	if other := mustParse(t, withCrosschain(`{"max_lock": "91m"}`)); other.Hash() == d.Hash() {
		t.Fatal("another max lock gives the same hash")
	}

	// Round trip: what Marshal writes parses back to the same document.
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("again.json", b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Crosschain == nil || back.Crosschain.MaxLock != "90m" || back.Hash() != d.Hash() {
		t.Fatalf("round trip gave %+v", back.Crosschain)
	}
	if b, _ := plain.Marshal(); strings.Contains(string(b), "crosschain") {
		t.Fatal("Marshal writes an absent crosschain section")
	}
}

func TestCrosschainParamsRules(t *testing.T) {
	for _, c := range []struct{ section, msg string }{
		{`{}`, "missing: a duration such as 24h"},
		{`{"max_lock": ""}`, "missing"},
		{`{"max_lock": "a day"}`, `must be a duration such as 24h or 90m, got "a day"`},
		{`{"max_lock": "0s"}`, `must be positive, got "0s"`},
		{`{"max_lock": "-1h"}`, `must be positive, got "-1h"`},
		{`{"max_lock": "1500us"}`, "must be a whole number of milliseconds"},
	} {
		d := mustParse(t, withCrosschain(c.section))
		l := errorList(t, d.Validate(builtin.Registry()))
		if len(l) != 1 || l[0].Field != "crosschain.max_lock" || l[0].Line != 18 || !strings.Contains(l[0].Msg, c.msg) {
			t.Errorf("%s: %v, want one error at line 18, crosschain.max_lock: %s", c.section, l, c.msg)
		}
		if _, err := d.Changes(nil); err == nil {
			t.Errorf("%s: Changes accepts it", c.section)
		}
	}
	for _, c := range []struct{ section, field, msg string }{
		{`{"max_lock": 86400000}`, "crosschain.max_lock", "want a string, got the number 86400000"},
		{`{"max_lock": "24h", "min_lock": "1h"}`, "crosschain.min_lock", `unknown field "min_lock"`},
		{`"24h"`, "crosschain", "want an object"},
	} {
		_, err := parse(t, withCrosschain(c.section))
		l := errorList(t, err)
		if len(l) == 0 || l[0].Field != c.field || l[0].Line != 18 || !strings.Contains(l[0].Msg, c.msg) {
			t.Errorf("%s: %v, want at line 18, %s: %s", c.section, l, c.field, c.msg)
		}
	}
	if d := mustParse(t, withCrosschain(`null`)); d.Crosschain != nil || d.Validate(builtin.Registry()) != nil {
		t.Error("a null crosschain section is not the same as none")
	}
}
