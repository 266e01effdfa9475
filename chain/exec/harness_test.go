package exec_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"sort"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

const chainID = "test-chain"

// tb is what the harness needs of *testing.T, *testing.B and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// memState is a committed state held in a map, so property tests can run thousands
// of blocks without a file each; the bbolt store is exercised in chain/block's tests.
type memState map[string][]byte

func (m memState) Get(key string) ([]byte, bool, error) {
	v, ok := m[key]
	return v, ok, nil
}

func (m memState) apply(cs []state.Change) {
	for _, c := range cs {
		if c.Delete {
			delete(m, c.Key)
		} else {
			m[c.Key] = c.Value
		}
	}
}

func (m memState) clone() memState {
	c := make(memState, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (m memState) set(t tb, key string, v any) {
	b, err := encoding.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	m[key] = b
}

func (m memState) uint(t tb, key string) uint64 {
	var n uint64
	if b, ok := m[key]; ok {
		if err := encoding.UnmarshalLax(b, &n); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// world is a chain's accounts and state for tests.
type world struct {
	keys   []crypto.PrivateKey
	addrs  []crypto.Address
	nonces []uint64
	st     memState
	reg    *transform.Registry
	ms     *transform.Models
}

var assets = []string{"USD", "EUR", "STAKE"}

// newWorld makes n accounts (deterministic keys from seed), an admin that is issuer
// of every asset, and gives every account funds of every asset.
func newWorld(t tb, n int, seed uint64, funds uint64) *world {
	w := &world{st: memState{}, reg: builtin.Registry(), ms: builtin.Models()}
	r := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i < n; i++ {
		var s [32]byte
		binary.LittleEndian.PutUint64(s[:], r.Uint64())
		binary.LittleEndian.PutUint64(s[8:], uint64(i))
		k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(s[:]))
		if err != nil {
			t.Fatal(err)
		}
		w.keys = append(w.keys, k)
		w.addrs = append(w.addrs, k.Public().Address())
		w.nonces = append(w.nonces, 0)
	}
	roles := []string{"admin", "issuer", "public", "validator"}
	w.st.set(t, rbac.RolesKey, roles)
	w.st.set(t, rbac.RoleKey("admin"), rbac.Role{Transforms: []string{asset.TypeCreate, rbac.TypeGrant, rbac.TypeRevoke, rbac.TypeSetRole}})
	w.st.set(t, rbac.RoleKey("issuer"), rbac.Role{Transforms: []string{asset.TypeBurn, asset.TypeIssue}})
	w.st.set(t, rbac.RoleKey("public"), rbac.Role{Public: true, Transforms: []string{asset.TypeTransfer}})
	w.st.set(t, rbac.RoleKey("validator"), rbac.Role{Public: true, Transforms: []string{validator.TypeStake, validator.TypeTransferPower, validator.TypeUnstake}})
	w.st.set(t, rbac.MemberKey("admin", w.addrs[0]), true)
	w.st.set(t, rbac.MemberKey("issuer", w.addrs[0]), true)
	w.st.set(t, validator.StakingAssetKey, "STAKE")
	for _, a := range assets {
		w.st.set(t, asset.DefKey(a), asset.Definition{Issuer: "issuer", Decimals: 2})
		for _, ad := range w.addrs {
			w.st.set(t, asset.BalanceKey(a, ad), funds)
		}
	}
	// The first account is the genesis validator with 1000 bonded STAKE.
	w.st.set(t, validator.SetKey, valset.Set{{Address: w.addrs[0], PubKey: w.keys[0].Public(), Power: 1000}})
	w.st.set(t, validator.BondKey(w.addrs[0]), uint64(1000))
	for _, a := range assets {
		supply := funds * uint64(n)
		if a == "STAKE" {
			supply += 1000
		}
		w.st.set(t, asset.SupplyKey(a), supply)
	}
	return w
}

// sign builds and signs a transaction of tr by the accounts at idx, consuming nonces.
func (w *world) sign(t tb, tr transform.Transform, idx ...int) *tx.Tx {
	var signers []tx.Signer
	for _, i := range idx {
		signers = append(signers, tx.Signer{Key: w.keys[i].Public(), Nonce: w.nonces[i]})
		w.nonces[i]++
	}
	x, err := tx.New(w.reg, chainID, tr, signers...)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range idx {
		if err := x.Sign(w.keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// supply sums balances and bonds of asset a over the state (the conservation check).
func (w *world) held(t tb, st memState, a string) uint64 {
	var sum uint64
	keys := make([]string, 0, len(st))
	for k := range st {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case len(k) > len("balance/"+a+"/") && k[:len("balance/"+a+"/")] == "balance/"+a+"/":
			sum += st.uint(t, k)
		case a == "STAKE" && len(k) > 5 && k[:5] == "bond/":
			sum += st.uint(t, k)
		}
	}
	return sum
}

func executor(workers int) *exec.Executor { return builtin.Executor(exec.WithWorkers(workers)) }

var env = exec.Env{ChainID: chainID, Height: 1, Time: 1_700_000_000_000}
