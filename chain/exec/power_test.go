package exec_test

import (
	"testing"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// Receiving power makes the receiver a member of the validator role, so a
// validator that moved to a new key can move the power on without an admin;
// the old key keeps its membership (it may stake again). A chain without the
// role gets none.
func TestTransferPowerGrantsValidatorRole(t *testing.T) {
	for _, workers := range []int{1, 4} {
		w := newWorld(t, 3, 5, 100)
		// A members-only validator role, held by the genesis validator (0).
		w.st.set(t, rbac.RoleKey(validator.Role), rbac.Role{Transforms: []string{validator.TypeStake, validator.TypeTransferPower, validator.TypeUnstake}})
		w.st.set(t, rbac.MemberKey(validator.Role, w.addrs[0]), true)

		// 2 holds no power and no role: refused by RBAC.
		res := mustExec(t, executor(workers), w.st,
			w.sign(t, &validator.TransferPower{To: w.addrs[0], ToKey: w.keys[0].Public(), Amount: 1}, 2))
		if res.Receipts[0].Code == exec.OK {
			t.Fatalf("workers=%d: transfer-power by a non-member committed", workers)
		}
		w.st.apply(res.Changes)

		// 0, the sole validator, moves all its power to 1 (a validator moving
		// to a new key), which then moves half of it back: 1 may, because the
		// first transfer made it a member.
		txs := []*tx.Tx{
			w.sign(t, &validator.TransferPower{To: w.addrs[1], ToKey: w.keys[1].Public(), Amount: 1000}, 0),
			w.sign(t, &validator.TransferPower{To: w.addrs[0], ToKey: w.keys[0].Public(), Amount: 500}, 1),
		}
		res = mustExec(t, executor(workers), w.st, txs...)
		for i, rc := range res.Receipts {
			if rc.Code != exec.OK {
				t.Fatalf("workers=%d tx %d: %v %s", workers, i, rc.Code, rc.Error)
			}
		}
		w.st.apply(res.Changes)
		var m bool
		if b, ok := w.st[rbac.MemberKey(validator.Role, w.addrs[1])]; !ok {
			t.Fatalf("workers=%d: receiver is not a member of the validator role", workers)
		} else if err := encoding.UnmarshalLax(b, &m); err != nil || !m {
			t.Fatalf("workers=%d: membership %v, %v", workers, m, err)
		}
		var set valset.Set
		if err := encoding.UnmarshalLax(w.st[validator.SetKey], &set); err != nil {
			t.Fatal(err)
		}
		if len(set) != 2 || set.TotalPower() != 1000 || set[set.Find(w.addrs[1])].Power != 500 {
			t.Fatalf("workers=%d: set %+v", workers, set)
		}
	}

	// Without a validator role (a chain that leaves power to a public role,
	// say), nothing is granted.
	w := newWorld(t, 2, 6, 100)
	w.st.set(t, rbac.RolesKey, []string{"admin", "issuer", "power", "public"})
	delete(w.st, rbac.RoleKey(validator.Role))
	w.st.set(t, rbac.RoleKey("power"), rbac.Role{Public: true, Transforms: []string{validator.TypeTransferPower}})
	res := mustExec(t, executor(2), w.st,
		w.sign(t, &validator.TransferPower{To: w.addrs[1], ToKey: w.keys[1].Public(), Amount: 10}, 0))
	if rc := res.Receipts[0]; rc.Code != exec.OK {
		t.Fatalf("%v %s", rc.Code, rc.Error)
	}
	for _, c := range res.Changes {
		if c.Key == rbac.MemberKey(validator.Role, w.addrs[1]) {
			t.Fatalf("granted a role the chain does not have: %+v", c)
		}
	}
}
