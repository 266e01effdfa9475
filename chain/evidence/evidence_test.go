package evidence_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/evidence"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
)

const chainID = "ev-test"

func key(i byte) crypto.PrivateKey {
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(bytes.Repeat([]byte{i}, 32)))
	if err != nil {
		panic(err)
	}
	return k
}

// memState is a committed state in memory.
type memState map[string][]byte

func (m memState) Get(k string) ([]byte, bool, error) { v, ok := m[k]; return v, ok, nil }

// chain is a default genesis of four validators with the given rules.
func chain(t *testing.T, rules *validator.Accountability) (memState, []crypto.PrivateKey) {
	t.Helper()
	vals := []crypto.PrivateKey{key(1), key(2), key(3), key(4)}
	var pubs []crypto.PublicKey
	for _, v := range vals {
		pubs = append(pubs, v.Public())
	}
	d := genesis.Default(chainID, pubs, key(9).Public().Address())
	d.Accountability = rules
	changes, err := d.Changes(builtin.Models())
	if err != nil {
		t.Fatal(err)
	}
	st := memState{}
	for _, c := range changes {
		st[c.Key] = c.Value
	}
	return st, vals
}

func vote(k crypto.PrivateKey, typ consensus.VoteType, height uint64, round uint32, block byte) *consensus.Vote {
	v := &consensus.Vote{Type: typ, ChainID: chainID, Height: height, Round: round, Validator: k.Public().Address()}
	if block != 0 {
		v.BlockID = hash.Hash{block}
	}
	sig, err := k.Sign(v.SignBytes())
	if err != nil {
		panic(err)
	}
	v.Signature = sig
	return v
}

// submit executes one evidence transaction signed by from at height and
// returns its receipt and the result.
func submit(t *testing.T, st memState, from crypto.PrivateKey, nonce, height uint64, ev *evidence.Equivocation) (exec.Receipt, *exec.Result) {
	t.Helper()
	reg := builtin.Registry()
	tr, err := tx.New(reg, chainID, ev, tx.Signer{Key: from.Public(), Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Sign(from); err != nil {
		t.Fatal(err)
	}
	res, err := exec.New(reg, builtin.Models()).Execute(st, exec.Env{ChainID: chainID, Height: height, Time: 1}, []*tx.Tx{tr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Receipts[0], res
}

func apply(st memState, res *exec.Result) {
	for _, c := range res.Changes {
		if c.Value == nil {
			delete(st, c.Key)
		} else {
			st[c.Key] = c.Value
		}
	}
}

func TestEquivocationJails(t *testing.T) {
	st, vals := chain(t, &validator.Accountability{SlashBps: 2_500})
	off := vals[3]
	addr := off.Public().Address()
	ev := evidence.New(vote(off, consensus.Commit, 5, 0, 1), vote(off, consensus.Commit, 5, 0, 2), genesis.DefaultStakingAsset)
	rc, res := submit(t, st, vals[0], 0, 7, ev)
	if rc.Code != exec.OK {
		t.Fatalf("evidence refused: %s %s", rc.Code, rc.Error)
	}
	apply(st, res)
	r := reader{st}
	set, _ := validator.Load(r)
	if set.Find(addr) >= 0 || len(set) != 3 {
		t.Fatalf("offender still in the set: %v", set)
	}
	rec, found, _ := validator.LoadJail(r, addr)
	if !found || rec.Offence != 5 || rec.Height != 7 || rec.Power != genesis.DefaultPower || rec.Slashed != genesis.DefaultPower/4 || rec.Released {
		t.Fatalf("jail record %+v %v", rec, found)
	}
	var bal, supply, bond uint64
	r.Get(asset.BalanceKey(genesis.DefaultStakingAsset, addr), &bal)
	r.Get(asset.SupplyKey(genesis.DefaultStakingAsset), &supply)
	r.Get(validator.BondKey(addr), &bond)
	if bal != genesis.DefaultPower*3/4 || bond != 0 || supply != genesis.DefaultAdminStake+4*genesis.DefaultPower-genesis.DefaultPower/4 {
		t.Fatalf("balance %d bond %d supply %d", bal, bond, supply)
	}

	// The same offence again: the offender is no longer a validator.
	if rc, _ := submit(t, st, vals[1], 0, 8, ev); rc.Code == exec.OK || !errors.Is(rc.Err, transform.ErrNotFound) {
		t.Fatalf("second evidence: %s %v", rc.Code, rc.Err)
	}
	// Jailed: power cannot come back by transfer until an admin releases it.
	tp, _ := tx.New(builtin.Registry(), chainID, &validator.TransferPower{To: addr, ToKey: off.Public(), Amount: 10}, tx.Signer{Key: vals[0].Public(), Nonce: 1})
	tp.Sign(vals[0])
	res, _ = exec.New(builtin.Registry(), builtin.Models()).Execute(st, exec.Env{ChainID: chainID, Height: 9, Time: 1}, []*tx.Tx{tp}, nil)
	if rc := res.Receipts[0]; rc.Code == exec.OK || !errors.Is(rc.Err, transform.ErrUnauthorized) {
		t.Fatalf("transfer to a jailed validator: %s %v", rc.Code, rc.Err)
	}
}

func TestEquivocationRefused(t *testing.T) {
	st, vals := chain(t, nil)
	off, other := vals[3], vals[2]
	a := vote(off, consensus.PreCommit, 5, 1, 1)
	forged := vote(other, consensus.PreCommit, 5, 1, 2)
	forged.Validator = off.Public().Address() // signed by another key
	cases := []struct {
		name string
		ev   *evidence.Equivocation
		want error
	}{
		{"same block", evidence.New(a, vote(off, consensus.PreCommit, 5, 1, 1), "STAKE"), transform.ErrInvalid},
		{"other round", evidence.New(a, vote(off, consensus.PreCommit, 5, 2, 2), "STAKE"), transform.ErrInvalid},
		{"other type", evidence.New(a, vote(off, consensus.Commit, 5, 1, 2), "STAKE"), transform.ErrInvalid},
		{"two validators", evidence.New(a, vote(other, consensus.PreCommit, 5, 1, 2), "STAKE"), transform.ErrInvalid},
		{"forged signature", evidence.New(a, forged, "STAKE"), transform.ErrInvalid},
		{"future", evidence.New(vote(off, consensus.Commit, 50, 0, 1), vote(off, consensus.Commit, 50, 0, 0), "STAKE"), transform.ErrInvalid},
		{"wrong asset", evidence.New(a, vote(off, consensus.PreCommit, 5, 1, 2), "USD"), transform.ErrInvalid},
		{"not a validator", evidence.New(vote(key(7), consensus.Commit, 5, 0, 1), vote(key(7), consensus.Commit, 5, 0, 2), "STAKE"), transform.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc, res := submit(t, st, vals[0], 0, 7, c.ev)
			if rc.Code == exec.OK || !errors.Is(rc.Err, c.want) {
				t.Fatalf("got %s %v, want %v", rc.Code, rc.Err, c.want)
			}
			for _, ch := range res.Changes {
				if ch.Key != exec.NonceKey(vals[0].Public().Address()) {
					t.Fatalf("refused evidence changed %s", ch.Key)
				}
			}
		})
	}
	// Anyone outside the validator and relayer roles may not submit evidence.
	if rc, _ := submit(t, st, key(8), 0, 7, evidence.New(a, vote(off, consensus.PreCommit, 5, 1, 2), "STAKE")); !errors.Is(rc.Err, transform.ErrUnauthorized) {
		t.Fatalf("outsider: %s %v", rc.Code, rc.Err)
	}
	// Too old.
	if rc, _ := submit(t, st, vals[0], 0, 5+validator.DefaultEvidenceMaxAge+1, evidence.New(a, vote(off, consensus.PreCommit, 5, 1, 2), "STAKE")); !errors.Is(rc.Err, transform.ErrInvalid) {
		t.Fatalf("old evidence: %s %v", rc.Code, rc.Err)
	}
}

// reader decodes values of a memState.
type reader struct{ st memState }

func (r reader) Get(key string, dst any) (bool, error) {
	v, ok := r.st[key]
	if !ok {
		return false, nil
	}
	return true, encoding.UnmarshalLax(v, dst)
}
