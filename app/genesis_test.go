package app

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/crosschain"
)

// The identities and the example document of chain/genesis's tests, so that
// the hashes pinned here are those of the same documents.
var (
	key1 = mustKey(crypto.Ed25519, 1)
	key2 = mustKey(crypto.P256, 2)
	acc1 = mustKey(crypto.Ed25519, 11).Public().Address()
	acc2 = mustKey(crypto.Ed25519, 12).Public().Address()

	vars = strings.NewReplacer(
		"$K1", hex.EncodeToString(key1.Public().Key),
		"$P2", hex.EncodeToString(key2.Public().Key),
		"$A1", acc1.String(),
		"$A2", acc2.String(),
	)
)

func mustKey(s crypto.SchemeID, seed byte) crypto.PrivateKey {
	k, err := crypto.GenerateKey(s, bytes.NewReader(bytes.Repeat([]byte{seed}, 64*32)))
	if err != nil {
		panic(err)
	}
	return k
}

// example is chain/genesis's valid example; its line 18 is where
// withCrosschain puts the section.
const example = `{
  "chain_id": "alpha",
  "genesis_time": "2026-11-24T00:00:00Z",
  "staking_asset": "STAKE",
  "validators": [
    {"name": "val-1", "pub_key": {"scheme": "ed25519", "key": "$K1"}, "power": 100},
    {"name": "val-2", "pub_key": {"scheme": "p256", "key": "$P2"}, "power": 50}
  ],
  "roles": [
    {"name": "admin", "transforms": ["rbac/set-role", "rbac/grant", "rbac/revoke", "asset/create"], "members": ["$A1"]},
    {"name": "issuer", "transforms": ["asset/issue", "asset/burn"], "members": ["$A1", "$A2"]},
    {"name": "public", "public": true, "transforms": ["asset/transfer"]}
  ],
  "assets": [
    {"name": "STAKE", "issuer": "issuer", "decimals": 0, "max_supply": 0, "balances": {"$A1": 1000}},
    {"name": "USD", "issuer": "issuer", "decimals": 2, "max_supply": 1000000, "balances": {"$A1": 1000, "$A2": 500}}
  ]
}
`

func parse(t *testing.T, text string) (*genesis.Doc, error) {
	t.Helper()
	return genesis.Parse("genesis.json", []byte(vars.Replace(text)))
}

func mustParse(t *testing.T, text string) *genesis.Doc {
	t.Helper()
	d, err := parse(t, text)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return d
}

func errorList(t *testing.T, err error) genesis.ErrorList {
	t.Helper()
	var l genesis.ErrorList
	if !errors.As(err, &l) {
		t.Fatalf("error %T %v is not an ErrorList", err, err)
	}
	return l
}

func openStore(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// reader reads typed values from a store, as the executor does.
type reader struct{ st *state.Store }

func (r reader) Get(key string, dst any) (bool, error) {
	v, ok, err := r.st.Get(key)
	if err != nil || !ok {
		return false, err
	}
	return true, encoding.UnmarshalLax(v, dst)
}

// TestHashesUnchanged pins the hashes documents had when the crosschain
// section and roles were part of chain/genesis: moving them behind
// genesis.Section must not change the genesis of any existing chain. The
// default document's pin changes when its roles do (it lists the built-in
// transforms each role may call).
func TestHashesUnchanged(t *testing.T) {
	if got, want := mustParse(t, withCrosschain(`{"max_lock": "90m"}`)).Hash().String(),
		"790e5c467122e3c99b78ab1d73bfcd51eb140e39bdf4006284475535a82671d2"; got != want {
		t.Errorf("hash with a crosschain section: %s, was %s", got, want)
	}
	if got, want := mustParse(t, withCrosschain(`{"max_lock": "bad"}`)).Hash().String(),
		"60dd774a0ce54cf6def8faba1d159c4dbd581046094dcf41ab318d9c56cda540"; got != want {
		t.Errorf("hash with an invalid crosschain section: %s, was %s", got, want)
	}
	d := genesis.Default("beta", []crypto.PublicKey{key1.Public(), key2.Public()}, acc1)
	d.GenesisTime = "2026-11-24T00:00:00Z"
	if got, want := d.Hash().String(), "36a65c4b1caf779debc7741cf11e9a91fc7c671e6282b518ec605235e91a1c6a"; got != want {
		t.Errorf("hash of a default genesis with the crosschain roles: %s, was %s", got, want)
	}
}

func TestCrosschainRoles(t *testing.T) {
	keys := []crypto.PublicKey{key1.Public(), key2.Public()}
	d := genesis.Default("beta", keys, acc1)
	reg := Registry()
	if err := d.Validate(reg); err != nil {
		t.Fatal(err)
	}
	ms := Models()
	st := openStore(t)
	if _, err := genesis.Init(st, d, ms); err != nil {
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
	ch, err := plain.Changes(Models())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ch {
		if c.Key == crosschain.ParamsKey {
			t.Fatal("a genesis without a crosschain section writes the parameters")
		}
	}

	d := mustParse(t, withCrosschain(`{"max_lock": "90m"}`))
	if err := d.Validate(Registry()); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	if _, err := genesis.Init(st, d, Models()); err != nil {
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
	back, err := genesis.Parse("again.json", b)
	if err != nil {
		t.Fatal(err)
	}
	if CrosschainOf(back) == nil || CrosschainOf(back).MaxLock != "90m" || back.Hash() != d.Hash() {
		t.Fatalf("round trip gave %+v", CrosschainOf(back))
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
		l := errorList(t, d.Validate(Registry()))
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
	if d := mustParse(t, withCrosschain(`null`)); CrosschainOf(d) != nil || d.Validate(Registry()) != nil {
		t.Error("a null crosschain section is not the same as none")
	}
}

// TestCrosschainSectionInGo sets the section on a document built in Go and
// checks that it is written, read back (by Parse and by encoding/json) and
// hashed as the same section in a file.
func TestCrosschainSectionInGo(t *testing.T) {
	d := mustParse(t, example)
	d.SetSection(CrosschainSection, &Crosschain{MaxLock: "90m"})
	want := mustParse(t, withCrosschain(`{"max_lock": "90m"}`)).Hash()
	if d.Hash() != want {
		t.Fatal("a section set in Go hashes differently from the same section in a file")
	}
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := genesis.Parse("again.json", b)
	if err != nil || back.Hash() != want {
		t.Fatalf("parse of %s: %v", b, err)
	}
	var viaJSON genesis.Doc
	if err := json.Unmarshal(b, &viaJSON); err != nil || viaJSON.Hash() != want || CrosschainOf(&viaJSON).MaxLock != "90m" {
		t.Fatalf("encoding/json round trip: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"crosschain": {"max_lock": "1h", "min_lock": "1m"}}`), &viaJSON); err == nil {
		t.Fatal("encoding/json accepts an unknown field of the section")
	}
	d.SetSection(CrosschainSection, nil)
	if CrosschainOf(d) != nil || d.Hash() == want {
		t.Fatal("removing the section left it in place")
	}
}
