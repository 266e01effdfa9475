package genesis

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// Deterministic test identities: K1 (ed25519) and P2 (p256) are the validators'
// keys, A1..A3 account addresses.
var (
	key1 = mustKey(crypto.Ed25519, 1)
	key2 = mustKey(crypto.P256, 2)
	acc1 = mustKey(crypto.Ed25519, 11).Public().Address()
	acc2 = mustKey(crypto.Ed25519, 12).Public().Address()
	acc3 = mustKey(crypto.Ed25519, 13).Public().Address()

	vars = strings.NewReplacer(
		"$K1", hex.EncodeToString(key1.Public().Key),
		"$P2", hex.EncodeToString(key2.Public().Key),
		"$A1", acc1.String(),
		"$A2", acc2.String(),
		"$A3", acc3.String(),
		"$UA1", strings.ToUpper(acc1.String()),
	)
)

func mustKey(s crypto.SchemeID, seed byte) crypto.PrivateKey {
	k, err := crypto.GenerateKey(s, bytes.NewReader(bytes.Repeat([]byte{seed}, 64*32)))
	if err != nil {
		panic(err)
	}
	return k
}

// example is a valid genesis; the rule tests below edit one line of it, so its
// line numbers matter: validators are lines 6-7, roles 10-12, assets 15-16.
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

func parse(t *testing.T, text string) (*Doc, error) {
	t.Helper()
	return Parse("genesis.json", []byte(vars.Replace(text)))
}

func mustParse(t *testing.T, text string) *Doc {
	t.Helper()
	d, err := parse(t, text)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return d
}

func errorList(t *testing.T, err error) ErrorList {
	t.Helper()
	var l ErrorList
	if !errors.As(err, &l) {
		t.Fatalf("error %T %v is not an ErrorList", err, err)
	}
	return l
}

func TestValidExample(t *testing.T) {
	d := mustParse(t, example)
	if err := d.Validate(builtin.Registry()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if got, want := d.Time(), int64(1795478400000); got != want {
		t.Errorf("Time() = %d, want %d", got, want)
	}
	if len(d.Validators) != 2 || d.Validators[1].Power != 50 || d.Assets[1].Balances[acc2.String()] != 500 {
		t.Errorf("decoded doc is wrong: %+v", d)
	}
}

// TestRules breaks one rule per case by replacing old with new in the example
// and checks the error's field, line and message.
func TestRules(t *testing.T) {
	u64max := "18446744073709551615"
	short := hex.EncodeToString(key1.Public().Key[:31]) // an ed25519 key one byte short
	cases := []struct {
		name, old, new string
		field          string
		line           int
		msg            string
	}{
		{"chain id charset", `"alpha"`, `"Alpha_1"`, "chain_id", 2, "must be 1-64"},
		{"chain id empty", `"alpha"`, `""`, "chain_id", 2, "must be 1-64"},
		{"chain id too long", `"alpha"`, `"` + strings.Repeat("a", 65) + `"`, "chain_id", 2, "must be 1-64"},
		{"genesis time", `"2026-11-24T00:00:00Z"`, `"2026-11-24 00:00"`, "genesis_time", 3, "RFC 3339"},
		{"staking asset unknown", `"staking_asset": "STAKE"`, `"staking_asset": "GOLD"`, "staking_asset", 4, `no asset "GOLD"`},
		{"validator name duplicate", `"val-2"`, `"val-1"`, "validators[1].name", 7, "duplicate name"},
		{"validator name empty", `"val-2"`, `""`, "validators[1].name", 7, "must be 1-64"},
		{"scheme unknown", `"scheme": "p256"`, `"scheme": "rsa"`, "validators[1].pub_key.scheme", 7, `unknown scheme "rsa"`},
		{"scheme missing", `"scheme": "p256", `, ``, "validators[1].pub_key.scheme", 7, "missing"},
		{"ed25519 key short", `"$K1"`, `"` + short + `"`, "validators[0].pub_key.key", 6, "31 bytes, want 32"},
		{"ed25519 key not hex", `"$K1"`, `"zz"`, "validators[0].pub_key.key", 6, "not hex"},
		{"p256 key wrong length", `"$P2"`, `"$K1"`, "validators[1].pub_key.key", 7, "33"},
		{"p256 key off curve", `"$P2"`, `"02` + strings.Repeat("ff", 32) + `"`, "validators[1].pub_key.key", 7, "not a curve point"},
		{"validator key duplicate", `"scheme": "p256", "key": "$P2"`, `"scheme": "ed25519", "key": "$K1"`, "validators[1].pub_key", 7, "duplicate key"},
		{"power zero", `"power": 50`, `"power": 0`, "validators[1].power", 7, "must be positive"},
		{"power overflow", `"power": 50`, `"power": 4611686018427387903`, "validators[1].power", 7, "total power overflows"},
		{"role name", `"name": "admin"`, `"name": "Admin"`, "roles[0].name", 10, "bad role name"},
		{"role duplicate", `"name": "issuer"`, `"name": "admin"`, "roles[1].name", 11, `duplicate role "admin"`},
		{"transform unknown", `"asset/burn"`, `"asset/teleport"`, "roles[1].transforms[1]", 11, `unknown transform "asset/teleport"`},
		{"transform duplicate", `"asset/burn"`, `"asset/issue"`, "roles[1].transforms[1]", 11, "duplicate transform"},
		{"member not an address", `"members": ["$A1"]`, `"members": ["xyz"]`, "roles[0].members[0]", 10, "not an address"},
		{"member duplicate", `["$A1", "$A2"]`, `["$A1", "$UA1"]`, "roles[1].members[1]", 11, "duplicate member"},
		{"nobody may grant", `"rbac/grant", `, ``, "roles", 9, "rbac/grant"},
		{"grant role without members", `"rbac/revoke", "asset/create"], "members": ["$A1"]}`, `"rbac/revoke", "asset/create"]}`, "roles", 9, "rbac/grant"},
		{"asset name", `"name": "USD"`, `"name": "U S D"`, "assets[1].name", 16, "bad asset name"},
		{"asset duplicate", `"name": "USD"`, `"name": "STAKE"`, "assets[1].name", 16, `duplicate asset "STAKE"`},
		{"issuer role missing", `"issuer": "issuer", "decimals": 2`, `"issuer": "treasury", "decimals": 2`, "assets[1].issuer", 16, `no role "treasury"`},
		{"issuer role empty", `"issuer": "issuer", "decimals": 2`, `"issuer": "", "decimals": 2`, "assets[1].issuer", 16, "missing"},
		{"balance address", `"$A2": 500`, `"xyz": 500`, `assets[1].balances["xyz"]`, 16, "not an address"},
		{"balance zero", `"$A2": 500`, `"$A2": 0`, `assets[1].balances["$A2"]`, 16, "must be positive"},
		{"balance duplicate address", `"$A2": 500`, `"$UA1": 500`, `assets[1].balances["$A1"]`, 16, "duplicate address"},
		{"balances overflow", `{"$A1": 1000, "$A2": 500}`, `{"$A1": ` + u64max + `, "$A2": 500}`, "assets[1].balances", 16, "overflows"},
		{"balances exceed max supply", `"max_supply": 1000000`, `"max_supply": 1499`, "assets[1].max_supply", 16, "exceeds max_supply 1499"},
		{"bonds exceed max supply", `"max_supply": 0`, `"max_supply": 1149`, "assets[0].max_supply", 15, "balances and the bonded power, 1150, exceeds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := strings.Count(example, c.old); n != 1 {
				t.Fatalf("%q occurs %d times in the example", c.old, n)
			}
			d := mustParse(t, strings.Replace(example, c.old, c.new, 1))
			err := d.Validate(builtin.Registry())
			l := errorList(t, err)
			field := vars.Replace(c.field)
			for _, e := range l {
				if strings.HasPrefix(e.Field, field) && e.Line == c.line && strings.Contains(e.Msg, c.msg) {
					if e.File != "genesis.json" || e.Column < 1 {
						t.Errorf("bad position in %v", e)
					}
					return
				}
			}
			t.Fatalf("want an error at line %d, field %s, saying %q; got:\n%v", c.line, field, c.msg, err)
		})
	}
}

func TestErrorFormatAndColumn(t *testing.T) {
	// Line 14, column 5: the "power" key.
	const doc = `{
  "chain_id": "alpha",
  "genesis_time": "2026-11-24T00:00:00Z",
  "validators": [
    {
      "name": "val-1",
      "pub_key": {"scheme": "ed25519", "key": "$K1"},
      "power": 100
    },
    {
    "name": "val-2",
    "pub_key": {"scheme": "p256", "key": "$P2"},
    "power": 1,
    "power": 0
    }
  ],
  "roles": [{"name": "admin", "transforms": ["rbac/grant"], "members": ["$A1"]}],
  "assets": []
}`
	_, err := parse(t, doc)
	if got, want := fmt.Sprint(err), `genesis.json:14:5: validators[1].power: duplicate key "power"`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	d := mustParse(t, strings.Replace(doc, `"power": 1,`+"\n", "\n", 1))
	err = d.Validate(builtin.Registry())
	if got, want := fmt.Sprint(err), "genesis.json:14:5: validators[1].power: must be positive"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	e := &Error{Field: "chain_id", Msg: "bad"}
	if got := e.Error(); got != "chain_id: bad" {
		t.Errorf("error without a position: %q", got)
	}
}

func TestCollectsAllErrors(t *testing.T) {
	d := mustParse(t, `{
  "chain_id": "Alpha",
  "genesis_time": "now",
  "validators": [],
  "roles": [],
  "assets": [{"name": "", "issuer": "nobody", "balances": {"$A1": 0}}]
}`)
	l := errorList(t, d.Validate(nil))
	want := []struct {
		line  int
		field string
	}{
		{2, "chain_id"}, {3, "genesis_time"}, {4, "validators"}, {5, "roles"},
		{6, "assets[0].name"}, {6, "assets[0].issuer"}, {6, `assets[0].balances["` + acc1.String() + `"]`},
	}
	if len(l) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(l), len(want), l)
	}
	for i, w := range want {
		if l[i].Line != w.line || l[i].Field != w.field {
			t.Errorf("error %d: got %v, want line %d field %s", i, l[i], w.line, w.field)
		}
	}
}

func TestErrorLimit(t *testing.T) {
	members := strings.Repeat(`"x", `, 2*MaxErrors)
	d := mustParse(t, `{"roles": [{"name": "r", "members": [`+members+`"x"]}]}`)
	l := errorList(t, d.Validate(nil))
	if len(l) != MaxErrors || l[0].Field != "chain_id" || !strings.Contains(l[MaxErrors-1].Msg, "more errors") {
		t.Fatalf("got %d errors, first %v, last %v", len(l), l[0], l[len(l)-1])
	}
	// Errors of a document built in Go have no position.
	d = Default("", nil, acc1)
	l = errorList(t, d.Validate(nil))
	if l[0].Error() != "chain_id: must be 1-64 of a-z 0-9 and '-', got \"\"" {
		t.Fatalf("got %v", l)
	}
}

func TestTooManyValidators(t *testing.T) {
	var b strings.Builder
	b.WriteString("{\n\"chain_id\": \"alpha\", \"genesis_time\": \"2026-11-24T00:00:00Z\",\n\"validators\": [\n")
	for i := range valset.MaxValidators + 1 {
		if i > 0 {
			b.WriteString(",\n")
		}
		k := mustKey(crypto.Ed25519, byte(i))
		fmt.Fprintf(&b, `{"name": "v%d", "pub_key": {"scheme": "ed25519", "key": "%x"}, "power": 1}`, i, k.Public().Key)
	}
	b.WriteString("],\n\"roles\": [{\"name\": \"admin\", \"public\": true, \"transforms\": [\"rbac/grant\"]}], \"assets\": []}")
	d := mustParse(t, b.String())
	l := errorList(t, d.Validate(nil))
	if len(l) != 1 || l[0].Field != "validators" || l[0].Line != 3 || !strings.Contains(l[0].Msg, "at most 150") {
		t.Fatalf("got %v", l)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, doc  string
		line, col  int
		field, msg string
	}{
		{"trailing comma", `{
  "chain_id": "alpha",
  "validators": [1, 2,],
  "roles": []
}`, 3, 23, "", "syntax error: invalid character ']'"},
		{"truncated", `{
  "chain_id": "alpha",
  "validators": [`, 3, 18, "", "unexpected end of JSON input"},
		{"bad literal", `{
  "staking_asset": nul
}`, 2, 23, "", "in literal null"},
		{"data after the object", `{"chain_id": "alpha"}
{"chain_id": "beta"}`, 2, 1, "", "after top-level value"},
		{"string for a number", `{
  "validators": [
    {"name": "v", "power": "100"}
  ]
}`, 3, 28, "validators[0].power", `want an integer in 0..18446744073709551615, got the string "100"`},
		{"negative number", `{
  "validators": [{"power": -1}]
}`, 2, 28, "validators[0].power", "got the number -1"},
		{"decimals too large", `{
  "assets": [
    {"name": "USD",
     "decimals": 256}
  ]
}`, 4, 18, "assets[0].decimals", "want an integer in 0..255, got the number 256"},
		{"fraction", `{"assets": [{"max_supply": 1.5}]}`, 1, 28, "assets[0].max_supply", "got the number 1.5"},
		{"object for a string", `{
  "chain_id": {"name": "alpha"}
}`, 2, 15, "chain_id", "want a string, got an object"},
		{"array for an object", `{"validators": [{"pub_key": ["ed25519"]}]}`, 1, 29, "validators[0].pub_key", "want an object, got an array"},
		{"not an object", `[]`, 1, 1, "", "want an object, got an array"},
		{"unknown field", `{
  "chain_id": "alpha",
  "validators": [
    {"name": "v", "powr": 1}
  ]
}`, 4, 19, "validators[0].powr", `unknown field "powr"`},
		{"unknown field differs in case", `{
  "Chain_ID": "alpha"
}`, 2, 3, "Chain_ID", `unknown field "Chain_ID"`},
		{"duplicate key", `{
  "chain_id": "alpha",
  "chain_id": "beta"
}`, 3, 3, "chain_id", `duplicate key "chain_id"`},
		{"duplicate balance", `{"assets": [{"balances": {
  "$A1": 1,
  "$A1": 2}}]}`, 3, 3, `assets[0].balances["$A1"]`, "duplicate key"},
		{"duplicate key in unknown field", `{"x": {"a": 1, "a": 2}}`, 1, 16, `x["a"]`, "duplicate key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := parse(t, c.doc)
			if d != nil || err == nil {
				t.Fatalf("parse succeeded")
			}
			l := errorList(t, err)
			for _, e := range l {
				if e.Line == c.line && e.Column == c.col && e.Field == vars.Replace(c.field) && strings.Contains(e.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("got %v\nwant %d:%d: %s: ...%s...", l, c.line, c.col, vars.Replace(c.field), c.msg)
		})
	}
}

// TestDecodeErrorPosition checks the conversion of encoding/json's own type errors
// (the walker normally reports them first).
func TestDecodeErrorPosition(t *testing.T) {
	data := []byte("{\n  \"validators\": [\n    {\"power\": true}\n  ]\n}")
	src := &source{file: "g.json", data: data, pos: map[string]int{}}
	if errs := scan(src, jsonType()); len(errs) != 1 {
		t.Fatalf("scan: %v", errs)
	}
	err := json.Unmarshal(data, new(Doc))
	if got, want := src.finish(ErrorList{src.decodeError(err)}).Error(), "g.json:3:6: validators[0].power: want an integer in 0..18446744073709551615, got bool"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestChangesAndRoot(t *testing.T) {
	d := mustParse(t, example)
	ms := builtin.Models()
	root1 := initStore(t, d)
	if root1 != initStore(t, mustParse(t, example)) {
		t.Fatal("the same genesis gave two roots")
	}
	// Same content, everything listed in another order and hex in upper case.
	shuffled := mustParse(t, `{
  "assets": [
    {"balances": {"$A2": 500, "$UA1": 1000}, "name": "USD", "issuer": "issuer", "decimals": 2, "max_supply": 1000000},
    {"name": "STAKE", "issuer": "issuer", "balances": {"$UA1": 1000}}
  ],
  "roles": [
    {"name": "public", "public": true, "transforms": ["asset/transfer"]},
    {"name": "issuer", "transforms": ["asset/burn", "asset/issue"], "members": ["$A2", "$UA1"]},
    {"name": "admin", "transforms": ["asset/create", "rbac/revoke", "rbac/grant", "rbac/set-role"], "members": ["$A1"]}
  ],
  "validators": [
    {"power": 50, "name": "val-2", "pub_key": {"key": "$P2", "scheme": "p256"}},
    {"name": "val-1", "pub_key": {"scheme": "ed25519", "key": "$K1"}, "power": 100}
  ],
  "staking_asset": "STAKE",
  "genesis_time": "2026-11-24T01:00:00+01:00",
  "chain_id": "alpha"
}`)
	if err := shuffled.Validate(builtin.Registry()); err != nil {
		t.Fatal(err)
	}
	if r := initStore(t, shuffled); r != root1 {
		t.Fatalf("order changed the root: %s vs %s", r, root1)
	}
	if d.Hash() != shuffled.Hash() {
		t.Fatal("order changed the genesis hash")
	}
	other := mustParse(t, strings.Replace(example, `"$A2": 500`, `"$A2": 501`, 1))
	if initStore(t, other) == root1 || other.Hash() == d.Hash() {
		t.Fatal("a different balance gave the same root or hash")
	}

	ch, err := d.Changes(ms)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string][]byte{}
	for i, c := range ch {
		if i > 0 && ch[i-1].Key >= c.Key {
			t.Fatalf("changes not sorted at %d: %s", i, c.Key)
		}
		vals[c.Key] = c.Value
	}
	// Every value decodes, strictly, as the type the transforms read.
	var roles []string
	mustDecode(t, vals[rbac.RolesKey], &roles)
	if fmt.Sprint(roles) != "[admin issuer public]" {
		t.Errorf("roles = %v", roles)
	}
	var admin rbac.Role
	mustDecode(t, vals[rbac.RoleKey("admin")], &admin)
	if fmt.Sprint(admin.Transforms) != "[asset/create rbac/grant rbac/revoke rbac/set-role]" || admin.Public {
		t.Errorf("admin = %+v", admin)
	}
	var member bool
	mustDecode(t, vals[rbac.MemberKey("issuer", acc2)], &member)
	if !member {
		t.Error("A2 is not an issuer")
	}
	var set valset.Set
	mustDecode(t, vals[validator.SetKey], &set)
	if err := set.Check(); err != nil || len(set) != 2 || set.TotalPower() != 150 {
		t.Errorf("set = %+v (%v)", set, err)
	}
	var sa string
	mustDecode(t, vals[validator.StakingAssetKey], &sa)
	if sa != "STAKE" {
		t.Errorf("staking asset = %q", sa)
	}
	// Supply = balances (+ bonds for the staking asset).
	for _, a := range []string{"STAKE", "USD"} {
		var sum, supply uint64
		for k, v := range vals {
			var n uint64
			if strings.HasPrefix(k, "balance/"+a+"/") || (a == "STAKE" && strings.HasPrefix(k, "bond/")) {
				mustDecode(t, v, &n)
				sum += n
			}
		}
		mustDecode(t, vals["supply/"+a], &supply)
		if supply != sum {
			t.Errorf("%s: supply %d, balances and bonds %d", a, supply, sum)
		}
	}
	var supply uint64
	mustDecode(t, vals["supply/STAKE"], &supply)
	if supply != 1150 {
		t.Errorf("STAKE supply %d, want 1150", supply)
	}
}

func TestStateReadsBack(t *testing.T) {
	d := mustParse(t, example)
	st := openStore(t)
	if _, err := Init(st, d, builtin.Models()); err != nil {
		t.Fatal(err)
	}
	rd := reader{st}
	p, err := rbac.Load(rd)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Allow("asset/transfer", []crypto.Address{acc3}); err != nil {
		t.Errorf("public transfer: %v", err)
	}
	if err := p.Allow("rbac/grant", []crypto.Address{acc1}); err != nil {
		t.Errorf("admin grant: %v", err)
	}
	if err := p.Allow("rbac/grant", []crypto.Address{acc2}); err == nil {
		t.Error("A2 may grant")
	}
	set, err := validator.Load(rd)
	if err != nil || set.Hash() == (hash.Hash{}) || len(set) != 2 {
		t.Fatalf("validator set %v %v", set, err)
	}
	if _, err := Init(st, d, builtin.Models()); err == nil {
		t.Fatal("Init on a non-empty store succeeded")
	}
}

func TestWithoutStakingAsset(t *testing.T) {
	d := mustParse(t, strings.Replace(example, `"staking_asset": "STAKE",`, ``, 1))
	if err := d.Validate(builtin.Registry()); err != nil {
		t.Fatal(err)
	}
	ch, err := d.Changes(builtin.Models())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ch {
		if strings.HasPrefix(c.Key, "bond/") || c.Key == validator.StakingAssetKey {
			t.Errorf("unexpected %s", c.Key)
		}
		if c.Key == "supply/STAKE" {
			var n uint64
			mustDecode(t, c.Value, &n)
			if n != 1000 {
				t.Errorf("STAKE supply %d, want 1000", n)
			}
		}
	}
}

func TestChangesRefusesInvalid(t *testing.T) {
	d := mustParse(t, strings.Replace(example, `"power": 50`, `"power": 0`, 1))
	if _, err := d.Changes(nil); err == nil {
		t.Fatal("Changes of an invalid doc succeeded")
	}
}

func TestDefault(t *testing.T) {
	keys := []crypto.PublicKey{key1.Public(), key2.Public()}
	d := Default("beta", keys, acc1)
	if err := d.Validate(builtin.Registry()); err != nil {
		t.Fatal(err)
	}
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := writeFile(path, b); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if err := back.Validate(builtin.Registry()); err != nil {
		t.Fatal(err)
	}
	if back.Hash() != d.Hash() {
		t.Fatal("hash changed through JSON")
	}
	st := openStore(t)
	if _, err := Init(st, back, builtin.Models()); err != nil {
		t.Fatal(err)
	}
	p, err := rbac.Load(reader{st})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Allow(validator.TypeStake, []crypto.Address{key2.Public().Address()}); err != nil {
		t.Errorf("validator may not stake: %v", err)
	}
	if err := p.Allow("asset/issue", []crypto.Address{acc1}); err != nil {
		t.Errorf("admin may not issue: %v", err)
	}
	// A bad file names itself.
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := writeFile(path, []byte("{\n  \"chain_id\": 7\n}")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ":2:15: chain_id: want a string, got the number 7"; fmt.Sprint(err) != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// helpers

func initStore(t *testing.T, d *Doc) hash.Hash {
	t.Helper()
	st := openStore(t)
	root, err := Init(st, d, builtin.Models())
	if err != nil {
		t.Fatal(err)
	}
	if root != st.Root() || root.IsZero() {
		t.Fatalf("root %s, store root %s", root, st.Root())
	}
	return root
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

func mustDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if b == nil {
		t.Fatalf("missing value for %T", v)
	}
	if err := encoding.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
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

func jsonType() reflect.Type { return reflect.TypeFor[Doc]() }

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }
