package shard

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
)

func testAddr(i int) crypto.Address {
	var a crypto.Address
	h := hash.Sum("test", []byte(fmt.Sprint(i)))
	copy(a[:], h[:])
	return a
}

const sample = `
name = "ledger"
assets = ["USD", "EUR"]
deadline = "30s"

[placement]
rule = "hash"

[[shards]]
chain_id = "shard-0"
endpoints = ["http://127.0.0.1:26700"]
generation = 0

[[shards]]
chain_id = "shard-1"
endpoints = ["http://127.0.0.1:26710"]
generation = 0

[[relays]]
name = "relay-1"
shards = ["shard-0", "shard-1"]
`

func TestParse(t *testing.T) {
	n, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "ledger" || len(n.Shards) != 2 || n.Generation() != 0 || n.Placement.Rule != RuleHash {
		t.Fatalf("parsed %+v", n)
	}
	b, err := n.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("re-parse of the encoding: %v\n%s", err, b)
	}
	if fmt.Sprint(m) != fmt.Sprint(n) {
		t.Fatalf("round trip changed the network:\n%+v\n%+v", n, m)
	}
}

func TestParseErrors(t *testing.T) {
	a := testAddr(1).String()
	cases := map[string]string{
		"typo":             strings.Replace(sample, "chain_id = \"shard-1\"", "chainid = \"shard-1\"", 1),
		"no shards":        "name = \"x\"\n",
		"unknown rule":     strings.Replace(sample, "rule = \"hash\"", "rule = \"range\"", 1),
		"duplicate shard":  strings.Replace(sample, "shard-1\"\nendpoints", "shard-0\"\nendpoints", 1),
		"generation gap":   strings.Replace(sample, "26710\"]\ngeneration = 0", "26710\"]\ngeneration = 2", 1),
		"bad asset":        strings.Replace(sample, "\"EUR\"", "\"E U R\"", 1),
		"relay to nowhere": strings.Replace(sample, "shards = [\"shard-0\", \"shard-1\"]", "shards = [\"shard-0\", \"shard-9\"]", 1),
		"bad deadline":     strings.Replace(sample, "\"30s\"", "\"soon\"", 1),
		"pin to nowhere":   sample + "\n[directory]\n\"" + a + "\" = \"shard-7\"\n",
		"bad pin address":  sample + "\n[directory]\n\"nothex\" = \"shard-0\"\n",
		"not toml":         "[[shards",
	}
	for name, src := range cases {
		if _, err := Parse([]byte(src)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

// TestPlacementStable pins the hash rule: a change here moves every account of
// every deployed network.
func TestPlacementStable(t *testing.T) {
	n, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 8; i++ {
		got = append(got, n.HashShard(testAddr(i), 0)[len("shard-"):])
	}
	if s := strings.Join(got, ""); s != goldenPlacement {
		t.Fatalf("placement of test addresses 0-7 is %s, want %s", s, goldenPlacement)
	}
}

const goldenPlacement = "11011000"

func TestPlacementBalanced(t *testing.T) {
	n := &Network{Shards: []Shard{{ChainID: "a"}, {ChainID: "b"}, {ChainID: "c"}, {ChainID: "d"}}}
	if err := n.Check(); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	const accounts = 40_000
	for i := 0; i < accounts; i++ {
		count[n.HashShard(testAddr(i), 0)]++
	}
	for id, c := range count {
		if c < accounts/4*95/100 || c > accounts/4*105/100 {
			t.Errorf("shard %s got %d of %d accounts, want within 5%% of %d", id, c, accounts, accounts/4)
		}
	}
}

// TestAddShardKeepsAccounts: after AddShard, an account's first candidate is its
// old shard (where it exists) and its last is where a new account goes; some new
// accounts go to the new shard.
func TestAddShardKeepsAccounts(t *testing.T) {
	n, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	before := map[crypto.Address]string{}
	for i := 0; i < 1000; i++ {
		before[testAddr(i)] = n.Candidates(testAddr(i))[0]
	}
	if err := n.AddShard("shard-2", []string{"http://127.0.0.1:26720"}); err != nil {
		t.Fatal(err)
	}
	if err := n.AddShard("shard-2", nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("adding shard-2 twice: %v", err)
	}
	toNew := 0
	for a, old := range before {
		c := n.Candidates(a)
		if c[0] != old {
			t.Fatalf("%s: first candidate %s, was placed on %s", a, c[0], old)
		}
		if c[len(c)-1] == "shard-2" {
			toNew++
		}
	}
	if toNew < 250 || toNew > 420 {
		t.Fatalf("%d of 1000 new accounts would go to the new shard, want about a third", toNew)
	}
	pinned := testAddr(5000)
	if err := n.Pin(pinned, "shard-1"); err != nil {
		t.Fatal(err)
	}
	if c := n.Candidates(pinned); len(c) != 1 || c[0] != "shard-1" {
		t.Fatalf("pinned account candidates %v", c)
	}
	if err := n.Pin(pinned, "shard-9"); !errors.Is(err, ErrConfig) {
		t.Fatalf("pin to an unknown shard: %v", err)
	}
}

func TestCrossTransferShape(t *testing.T) {
	x := CrossTransfer("shard-0", "shard-1", "USD", testAddr(1), testAddr(2), 5, 1, 7)
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
	if x.Coordinator != "shard-0" {
		t.Fatalf("coordinator %s, want the payer's shard", x.Coordinator)
	}
}

// FuzzParse: any bytes either parse into a network that passes Check and
// survives an encode/parse round trip, or fail with ErrConfig; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("[[shards]]\nchain_id = \"a\"\n"))
	f.Add([]byte("[[shards]]\nchain_id = \"a\"\ngeneration = 1\n"))
	f.Add([]byte("name = 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error without ErrConfig: %v", err)
			}
			return
		}
		enc, err := n.Encode()
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parse of an accepted network: %v\n%s", err, enc)
		}
		if len(m.Shards) != len(n.Shards) || m.Generation() != n.Generation() {
			t.Fatalf("round trip changed the shards: %+v -> %+v", n.Shards, m.Shards)
		}
		for i := 0; i < 4; i++ {
			a := testAddr(i)
			if fmt.Sprint(m.Candidates(a)) != fmt.Sprint(n.Candidates(a)) {
				t.Fatalf("round trip moved %s", a)
			}
		}
	})
}
