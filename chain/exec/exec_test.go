package exec_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
)

func mustExec(t tb, e *exec.Executor, st memState, txs ...*tx.Tx) *exec.Result {
	t.Helper()
	res, err := e.Execute(st, env, txs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTransferMovesFundsAndConsumesNonce(t *testing.T) {
	w := newWorld(t, 3, 1, 100)
	x := w.sign(t, &asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[2], Amount: 40}, 1)
	res := mustExec(t, executor(2), w.st, x)
	if rc := res.Receipts[0]; rc.Code != exec.OK {
		t.Fatalf("receipt %v: %s", rc.Code, rc.Error)
	}
	w.st.apply(res.Changes)
	if got := w.st.uint(t, asset.BalanceKey("USD", w.addrs[1])); got != 60 {
		t.Errorf("sender balance %d, want 60", got)
	}
	if got := w.st.uint(t, asset.BalanceKey("USD", w.addrs[2])); got != 140 {
		t.Errorf("receiver balance %d, want 140", got)
	}
	if got := w.st.uint(t, exec.NonceKey(w.addrs[1])); got != 1 {
		t.Errorf("nonce %d, want 1", got)
	}
	// The same transaction again is a replay.
	res = mustExec(t, executor(2), w.st, x)
	if rc := res.Receipts[0]; rc.Code != exec.Rejected || !errors.Is(rc.Err, tx.ErrBadNonce) {
		t.Fatalf("replay: %v %v", rc.Code, rc.Err)
	}
	if len(res.Changes) != 0 {
		t.Fatalf("replay changed state: %v", res.Changes)
	}
}

// probe is an application transform used to show the executor's guards.
type probe struct {
	Mode string `cbor:"1,keyasint"`
}

func (p *probe) Keys(*transform.Context) (r, w []string) {
	return []string{"probe/ro"}, []string{"probe/rw"}
}
func (p *probe) Authorizations(*transform.Context) []crypto.Address { return nil }
func (p *probe) Verify(*transform.Context, transform.State) error   { return nil }
func (p *probe) Apply(_ *transform.Context, st transform.State) error {
	switch p.Mode {
	case "undeclared-read":
		_, err := st.Get("balance/USD/00", new(uint64))
		return err
	case "undeclared-write":
		return st.Set("elsewhere", uint64(1))
	case "readonly-write":
		return st.Set("probe/ro", uint64(1))
	case "huge":
		return st.Set("probe/rw", strings.Repeat("x", exec.MaxValueSize+1))
	case "panic":
		var m map[string]int
		//lint:ignore SA5000 a panicking transform is what this case tests
		m["boom"]++
	case "write-then-fail":
		if err := st.Set("probe/rw", "written"); err != nil {
			return err
		}
		return fmt.Errorf("%w: refused after writing", transform.ErrInvalid)
	}
	return st.Set("probe/rw", p.Mode)
}

func TestBadInputIsTypedAndChangesNothing(t *testing.T) {
	w := newWorld(t, 3, 2, 100)
	w.reg.MustRegister("probe", &probe{})
	if err := w.ms.Add(transform.Model{Name: "probe", Prefix: "probe/"}); err != nil {
		t.Fatal(err)
	}
	w.st.set(t, rbac.RolesKey, []string{"admin", "issuer", "prober", "public", "validator"})
	w.st.set(t, rbac.RoleKey("prober"), rbac.Role{Public: true, Transforms: []string{"probe"}})
	e := exec.New(w.reg, w.ms, exec.WithWorkers(2))

	fresh := func(tr transform.Transform, idx ...int) *tx.Tx {
		w.nonces[idx[0]] = w.st.uint(t, exec.NonceKey(w.addrs[idx[0]]))
		return w.sign(t, tr, idx...)
	}
	cases := []struct {
		name string
		tx   func() *tx.Tx
		code exec.Code
		err  error
	}{
		{"wrong chain", func() *tx.Tx {
			x := fresh(&asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[2], Amount: 1}, 1)
			x.Body.ChainID = "other"
			x.Proofs = nil
			if err := x.Sign(w.keys[1]); err != nil {
				t.Fatal(err)
			}
			return x
		}, exec.Rejected, tx.ErrWrongChain},
		{"bad signature", func() *tx.Tx {
			x := fresh(&asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[2], Amount: 1}, 1)
			x.Proofs[0].Signature[3] ^= 1
			return x
		}, exec.Rejected, tx.ErrBadProof},
		{"missing proof", func() *tx.Tx {
			x := fresh(&asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[2], Amount: 1}, 1)
			x.Proofs = nil
			return x
		}, exec.Rejected, tx.ErrMalformed},
		{"future nonce", func() *tx.Tx {
			w.nonces[1] = 7
			return w.sign(t, &asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[2], Amount: 1}, 1)
		}, exec.Rejected, tx.ErrBadNonce},
		{"unknown transform", func() *tx.Tx {
			x := fresh(&asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[2], Amount: 1}, 1)
			x.Body.Type = "asset/teleport"
			x.Proofs = nil
			_ = x.Sign(w.keys[1])
			return x
		}, exec.Rejected, transform.ErrUnknownTransform},
		{"malformed payload", func() *tx.Tx {
			x := fresh(&asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[2], Amount: 1}, 1)
			x.Body.Payload = []byte{0xa1, 0x09, 0x01} // {9: 1}: no such field
			x.Proofs = nil
			_ = x.Sign(w.keys[1])
			return x
		}, exec.Rejected, encoding.ErrMalformed},
		{"insufficient funds", func() *tx.Tx {
			return fresh(&asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[2], Amount: 101}, 1)
		}, exec.Failed, transform.ErrInsufficientFunds},
		{"transfer to the zero address", func() *tx.Tx {
			return fresh(&asset.Transfer{Asset: "USD", From: w.addrs[1], Amount: 1}, 1)
		}, exec.Failed, asset.ErrZeroAddress},
		{"issue to the zero address", func() *tx.Tx {
			return fresh(&asset.Issue{Asset: "USD", Amount: 1}, 0)
		}, exec.Failed, asset.ErrZeroAddress},
		{"unknown asset", func() *tx.Tx {
			return fresh(&asset.Transfer{Asset: "GBP", From: w.addrs[1], To: w.addrs[2], Amount: 1}, 1)
		}, exec.Failed, transform.ErrNotFound},
		{"someone else's funds", func() *tx.Tx {
			return fresh(&asset.Transfer{Asset: "USD", From: w.addrs[2], To: w.addrs[1], Amount: 1}, 1)
		}, exec.Failed, transform.ErrUnauthorized},
		{"no role", func() *tx.Tx {
			return fresh(&rbac.Grant{Role: "issuer", Member: w.addrs[1]}, 1)
		}, exec.Failed, transform.ErrUnauthorized},
		{"not the issuer", func() *tx.Tx {
			return fresh(&asset.Issue{Asset: "USD", To: w.addrs[1], Amount: 5}, 1)
		}, exec.Failed, transform.ErrUnauthorized},
		{"undeclared read", func() *tx.Tx { return fresh(&probe{Mode: "undeclared-read"}, 1) }, exec.Failed, transform.ErrUndeclaredKey},
		{"undeclared write", func() *tx.Tx { return fresh(&probe{Mode: "undeclared-write"}, 1) }, exec.Failed, transform.ErrUndeclaredKey},
		{"read-only write", func() *tx.Tx { return fresh(&probe{Mode: "readonly-write"}, 1) }, exec.Failed, transform.ErrReadOnlyKey},
		{"oversized value", func() *tx.Tx { return fresh(&probe{Mode: "huge"}, 1) }, exec.Failed, exec.ErrValueTooLarge},
		{"panic", func() *tx.Tx { return fresh(&probe{Mode: "panic"}, 1) }, exec.Failed, exec.ErrPanic},
		{"write then fail", func() *tx.Tx { return fresh(&probe{Mode: "write-then-fail"}, 1) }, exec.Failed, transform.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := c.tx()
			before := w.st.clone()
			res, err := e.Execute(w.st, env, []*tx.Tx{x}, nil)
			if err != nil {
				t.Fatal(err)
			}
			rc := res.Receipts[0]
			if rc.Code != c.code || !errors.Is(rc.Err, c.err) {
				t.Fatalf("got %v %q, want %v wrapping %v", rc.Code, rc.Error, c.code, c.err)
			}
			if rc.Error == "" {
				t.Fatal("receipt records no reason")
			}
			// Only the signer's nonce may change, and only for a failed transaction.
			after := before.clone()
			after.apply(res.Changes)
			for _, ch := range res.Changes {
				if c.code == exec.Rejected || ch.Key != exec.NonceKey(x.Body.Signers[0].Key.Address()) {
					t.Fatalf("%s changed %q", c.code, ch.Key)
				}
			}
			w.st.apply(res.Changes)
		})
	}
}

// TestAdmitRefusesWhatExecuteRejects: every shape the executor rejects without
// reading state — other chain, unknown type, payloads that do not decode
// canonically (a negative integer, a float, a non-minimal integer, an unknown
// field) — is refused by Admit with the same sentinel, and a well-formed
// transaction is admitted.
func TestAdmitRefusesWhatExecuteRejects(t *testing.T) {
	w := newWorld(t, 2, 2, 100)
	e := exec.New(w.reg, w.ms)
	good := &asset.Transfer{Asset: "USD", From: w.addrs[1], To: w.addrs[0], Amount: 1}
	withPayload := func(typ string, payload []byte) *tx.Tx {
		x := w.sign(t, good, 1)
		x.Body.Type, x.Body.Payload, x.Proofs = typ, payload, nil
		if err := x.Sign(w.keys[1]); err != nil {
			t.Fatal(err)
		}
		return x
	}
	enc := encoding.MustMarshal(good)
	// The amount is field 4, the payload's last: its encoding ends the bytes.
	amountAt := len(enc) - 1
	negative := append(bytes.Clone(enc[:amountAt]), 0x20) // -1
	float := append(bytes.Clone(enc[:amountAt]), 0xf9, 0x3c, 0x00)
	nonMinimal := append(bytes.Clone(enc[:amountAt]), 0x18, 0x01) // 1 in two bytes
	cases := []struct {
		name string
		tx   *tx.Tx
		want error
	}{
		{"negative integer", withPayload(asset.TypeTransfer, negative), encoding.ErrMalformed},
		{"float", withPayload(asset.TypeTransfer, float), encoding.ErrMalformed},
		{"non-canonical integer", withPayload(asset.TypeTransfer, nonMinimal), encoding.ErrNonCanonical},
		{"unknown field", withPayload(asset.TypeTransfer, []byte{0xa1, 0x09, 0x01}), encoding.ErrMalformed},
		{"unknown type", withPayload("asset/teleport", enc), transform.ErrUnknownTransform},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := e.Admit(chainID, c.tx); !errors.Is(err, c.want) {
				t.Fatalf("Admit: %v, want %v", err, c.want)
			}
			res, err := e.Execute(w.st, env, []*tx.Tx{c.tx}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rc := res.Receipts[0]; rc.Code != exec.Rejected || !errors.Is(rc.Err, c.want) {
				t.Fatalf("Execute: %v %q, want rejected wrapping %v", rc.Code, rc.Error, c.want)
			}
		})
	}
	if err := e.Admit("other", w.sign(t, good, 1)); !errors.Is(err, tx.ErrWrongChain) {
		t.Fatalf("other chain: %v", err)
	}
	if err := e.Admit(chainID, w.sign(t, good, 1)); err != nil {
		t.Fatalf("well-formed transfer: %v", err)
	}
}

func TestRBACChangesAtRunTimeInBlockOrder(t *testing.T) {
	w := newWorld(t, 4, 3, 100)
	txs := []*tx.Tx{
		w.sign(t, &asset.Issue{Asset: "USD", To: w.addrs[2], Amount: 1}, 1), // not yet an issuer
		w.sign(t, &rbac.Grant{Role: "issuer", Member: w.addrs[1]}, 0),       // admin grants
		w.sign(t, &asset.Issue{Asset: "USD", To: w.addrs[2], Amount: 2}, 1), // now allowed
		w.sign(t, &asset.Transfer{Asset: "EUR", From: w.addrs[3], To: w.addrs[2], Amount: 3}, 3),
		w.sign(t, &rbac.Revoke{Role: "issuer", Member: w.addrs[1]}, 0),      // admin revokes
		w.sign(t, &asset.Issue{Asset: "USD", To: w.addrs[2], Amount: 4}, 1), // refused again
		w.sign(t, &rbac.Grant{Role: "admin", Member: w.addrs[3]}, 2),        // not an admin
	}
	want := []exec.Code{exec.Failed, exec.OK, exec.OK, exec.OK, exec.OK, exec.Failed, exec.Failed}
	for _, workers := range []int{1, 4} {
		res := mustExec(t, executor(workers), w.st, txs...)
		for i, rc := range res.Receipts {
			if rc.Code != want[i] {
				t.Errorf("workers=%d tx %d: %v %s, want %v", workers, i, rc.Code, rc.Error, want[i])
			}
		}
		after := w.st.clone()
		after.apply(res.Changes)
		if got := after.uint(t, asset.BalanceKey("USD", w.addrs[2])); got != 102 {
			t.Errorf("workers=%d: balance %d, want 102", workers, got)
		}
	}
}

// genTx draws a random transaction over a small account pool (so conflicts are
// common), including RBAC barriers, failures and rejections.
func genTx(t *rapid.T, w *world) (*tx.Tx, string) {
	n := len(w.addrs)
	acct := rapid.IntRange(0, n-1)
	amount := rapid.Uint64Range(0, 150)
	a := rapid.SampledFrom(assets).Draw(t, "asset")
	kind := rapid.SampledFrom([]string{"transfer", "transfer", "transfer", "transfer", "issue", "burn", "stake", "unstake", "power", "grant", "revoke", "replay", "badsig"}).Draw(t, "kind")
	from, to := acct.Draw(t, "from"), acct.Draw(t, "to")
	switch kind {
	case "transfer":
		return w.sign(t, &asset.Transfer{Asset: a, From: w.addrs[from], To: w.addrs[to], Amount: amount.Draw(t, "amount")}, from), kind
	case "issue":
		return w.sign(t, &asset.Issue{Asset: a, To: w.addrs[to], Amount: amount.Draw(t, "amount")}, rapid.SampledFrom([]int{0, from}).Draw(t, "issuer")), kind
	case "burn":
		return w.sign(t, &asset.Burn{Asset: a, From: w.addrs[from], Amount: amount.Draw(t, "amount")}, from), kind
	case "stake":
		return w.sign(t, &validator.Stake{Asset: "STAKE", Amount: amount.Draw(t, "amount")}, from), kind
	case "unstake":
		return w.sign(t, &validator.Unstake{Asset: "STAKE", Amount: amount.Draw(t, "amount")}, from), kind
	case "power":
		return w.sign(t, &validator.TransferPower{To: w.addrs[to], ToKey: w.keys[to].Public(), Amount: amount.Draw(t, "amount")}, from), kind
	case "grant":
		return w.sign(t, &rbac.Grant{Role: "issuer", Member: w.addrs[to]}, rapid.SampledFrom([]int{0, from}).Draw(t, "admin")), kind
	case "revoke":
		return w.sign(t, &rbac.Revoke{Role: "issuer", Member: w.addrs[to]}, rapid.SampledFrom([]int{0, from}).Draw(t, "admin")), kind
	case "replay":
		w.nonces[from] = rapid.Uint64Range(0, w.nonces[from]).Draw(t, "old nonce")
		x := w.sign(t, &asset.Transfer{Asset: a, From: w.addrs[from], To: w.addrs[to], Amount: 1}, from)
		return x, kind
	default:
		x := w.sign(t, &asset.Transfer{Asset: a, From: w.addrs[from], To: w.addrs[to], Amount: 1}, from)
		w.nonces[from]--
		x.Proofs[0].Signature[0] ^= 0x80
		return x, kind
	}
}

// TestParallelEqualsSerial runs random blocks with random conflicts through the
// parallel executor and the serial reference and requires identical outcomes; it
// also checks per-asset conservation against the issues and burns that succeeded.
func TestParallelEqualsSerial(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, rapid.IntRange(2, 12).Draw(t, "accounts"), rapid.Uint64().Draw(t, "seed"), 100)
		for block := 0; block < 3; block++ {
			var txs []*tx.Tx
			for i, n := 0, rapid.IntRange(0, 120).Draw(t, "txs"); i < n; i++ {
				x, _ := genTx(t, w)
				txs = append(txs, x)
			}
			par, err := executor(rapid.IntRange(2, 8).Draw(t, "workers")).Execute(w.st, env, txs, nil)
			if err != nil {
				t.Fatal(err)
			}
			ser, err := executor(1).ExecuteSerial(w.st, env, txs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(encoding.MustMarshal(par.Receipts), encoding.MustMarshal(ser.Receipts)) {
				for i := range par.Receipts {
					if par.Receipts[i].Code != ser.Receipts[i].Code || par.Receipts[i].Error != ser.Receipts[i].Error {
						t.Fatalf("tx %d: parallel %v %q, serial %v %q", i, par.Receipts[i].Code, par.Receipts[i].Error, ser.Receipts[i].Code, ser.Receipts[i].Error)
					}
				}
			}
			if !reflect.DeepEqual(par.Changes, ser.Changes) {
				t.Fatalf("parallel and serial changes differ")
			}
			if par.ReceiptsRoot() != ser.ReceiptsRoot() {
				t.Fatal("receipts roots differ")
			}
			// Conservation: held(after) = held(before) + issued - burned.
			after := w.st.clone()
			after.apply(par.Changes)
			for _, a := range assets {
				delta := int64(0)
				for i, rc := range par.Receipts {
					if rc.Code != exec.OK {
						continue
					}
					var tr any
					switch txs[i].Body.Type {
					case asset.TypeIssue:
						var is asset.Issue
						_ = encoding.Unmarshal(txs[i].Body.Payload, &is)
						if is.Asset == a {
							delta += int64(is.Amount)
						}
						tr = is
					case asset.TypeBurn:
						var bu asset.Burn
						_ = encoding.Unmarshal(txs[i].Body.Payload, &bu)
						if bu.Asset == a {
							delta -= int64(bu.Amount)
						}
						tr = bu
					}
					_ = tr
				}
				before, now := int64(w.held(t, w.st, a)), int64(w.held(t, after, a))
				if now != before+delta {
					t.Fatalf("asset %s: held %d -> %d, issued-burned %d", a, before, now, delta)
				}
				if sup := int64(after.uint(t, asset.SupplyKey(a))); sup != now {
					t.Fatalf("asset %s: supply %d, held %d", a, sup, now)
				}
			}
			// The next block starts from the state after this one; nonces are what the
			// chain says, so rejected transactions free their nonces for reuse.
			w.st = after
			for i := range w.addrs {
				w.nonces[i] = w.st.uint(t, exec.NonceKey(w.addrs[i]))
			}
		}
	})
}

// parts is a transform.Partial: it applies the parts listed in Apply and skips
// the others, as a batch of independent steps does.
type parts struct {
	Take []bool `cbor:"1,keyasint"`

	skipped []transform.Skip
}

func (p *parts) Keys(*transform.Context) (r, w []string)            { return nil, []string{"probe/rw"} }
func (p *parts) Authorizations(*transform.Context) []crypto.Address { return nil }
func (p *parts) Verify(*transform.Context, transform.State) error   { return nil }
func (p *parts) Apply(_ *transform.Context, st transform.State) error {
	applied := 0
	for i, ok := range p.Take {
		if !ok {
			p.skipped = append(p.skipped, transform.Skip{Part: uint32(i), Error: fmt.Sprintf("part %d refused", i)})
			continue
		}
		applied++
	}
	if applied == 0 {
		return fmt.Errorf("%w: no part applies", transform.ErrInvalid)
	}
	return st.Set("probe/rw", uint64(applied))
}
func (p *parts) Skipped() []transform.Skip { return p.skipped }

// TestPartialReceipts: a transform.Partial's skipped parts are in its receipt,
// and so in the receipts root; a failed one lists none.
func TestPartialReceipts(t *testing.T) {
	w := newWorld(t, 2, 4, 100)
	w.reg.MustRegister("parts", &parts{})
	if err := w.ms.Add(transform.Model{Name: "probe", Prefix: "probe/"}); err != nil {
		t.Fatal(err)
	}
	w.st.set(t, rbac.RolesKey, []string{"admin", "issuer", "parts", "public", "validator"})
	w.st.set(t, rbac.RoleKey("parts"), rbac.Role{Public: true, Transforms: []string{"parts"}})
	e := exec.New(w.reg, w.ms, exec.WithWorkers(2))

	some := w.sign(t, &parts{Take: []bool{true, false, true, false}}, 1)
	all := w.sign(t, &parts{Take: []bool{true, true}}, 1)
	none := w.sign(t, &parts{Take: []bool{false}}, 1)
	res, err := e.Execute(w.st, env, []*tx.Tx{some, all, none}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []transform.Skip{{Part: 1, Error: "part 1 refused"}, {Part: 3, Error: "part 3 refused"}}
	if rc := res.Receipts[0]; rc.Code != exec.OK || !reflect.DeepEqual(rc.Skipped, want) {
		t.Fatalf("partly applied: %v %q, skipped %+v; want ok, skipped %+v", rc.Code, rc.Error, rc.Skipped, want)
	}
	if rc := res.Receipts[1]; rc.Code != exec.OK || rc.Skipped != nil {
		t.Fatalf("fully applied: %v, skipped %+v; want ok and none", rc.Code, rc.Skipped)
	}
	if rc := res.Receipts[2]; rc.Code != exec.Failed || rc.Skipped != nil {
		t.Fatalf("nothing applied: %v, skipped %+v; want failed and none listed", rc.Code, rc.Skipped)
	}
	// The receipts root commits to what was skipped.
	root := res.ReceiptsRoot()
	res.Receipts[0].Skipped = want[:1]
	if res.ReceiptsRoot() == root {
		t.Fatal("the receipts root does not cover the skipped parts")
	}
}
