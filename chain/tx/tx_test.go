package tx_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/tx"
)

func key(t testing.TB, b byte, scheme crypto.SchemeID) crypto.PrivateKey {
	k, err := crypto.GenerateKey(scheme, bytes.NewReader(bytes.Repeat([]byte{b}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signed(t testing.TB) (*tx.Tx, crypto.PrivateKey, crypto.PrivateKey) {
	a, b := key(t, 1, crypto.Ed25519), key(t, 2, crypto.P256)
	x, err := tx.New(builtin.Registry(), "c1", &asset.Transfer{Asset: "USD", From: a.Public().Address(), To: b.Public().Address(), Amount: 5},
		tx.Signer{Key: a.Public(), Nonce: 3}, tx.Signer{Key: b.Public(), Nonce: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Sign(a); err != nil {
		t.Fatal(err)
	}
	if err := x.Sign(b); err != nil {
		t.Fatal(err)
	}
	return x, a, b
}

func TestRoundTripAndProofs(t *testing.T) {
	x, _, _ := signed(t)
	raw, err := x.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := tx.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := x.ID()
	id2, _ := back.ID()
	if id1 != id2 {
		t.Fatal("ID changed across encode/decode")
	}
	if errs := tx.VerifyProofs([]*tx.Tx{back}); errs[0] != nil {
		t.Fatalf("two-scheme transaction: %v", errs[0])
	}
}

func TestSignRefusesWrongKeyAndExtraProof(t *testing.T) {
	x, a, b := signed(t)
	x.Proofs = nil
	if err := x.Sign(b); !errors.Is(err, tx.ErrMalformed) {
		t.Fatalf("signing out of order: %v", err)
	}
	_ = x.Sign(a)
	_ = x.Sign(b)
	if err := x.Sign(a); !errors.Is(err, tx.ErrMalformed) {
		t.Fatalf("extra proof: %v", err)
	}
}

func TestVerifyProofsReportsEachBadTransaction(t *testing.T) {
	good, _, _ := signed(t)
	tampered, _, _ := signed(t)
	tampered.Body.Memo = "changed after signing"
	swapped, _, _ := signed(t)
	swapped.Proofs[0], swapped.Proofs[1] = swapped.Proofs[1], swapped.Proofs[0]
	short, _, _ := signed(t)
	short.Proofs = short.Proofs[:1]
	dup, _, _ := signed(t)
	dup.Body.Signers[1] = dup.Body.Signers[0]
	errs := tx.VerifyProofs([]*tx.Tx{good, tampered, swapped, short, dup})
	want := []error{nil, tx.ErrBadProof, tx.ErrBadProof, tx.ErrMalformed, tx.ErrMalformed}
	for i := range want {
		if (want[i] == nil) != (errs[i] == nil) || (want[i] != nil && !errors.Is(errs[i], want[i])) {
			t.Errorf("tx %d: got %v, want %v", i, errs[i], want[i])
		}
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	x, _, _ := signed(t)
	raw, _ := x.Encode()
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"truncated":   {raw[:len(raw)-1], encoding.ErrMalformed},
		"trailing":    {append(append([]byte{}, raw...), 0), encoding.ErrMalformed},
		"oversized":   {make([]byte, tx.MaxTxSize+1), tx.ErrTooLarge},
		"not a tx":    {encoding.MustMarshal([]int{1, 2}), encoding.ErrMalformed},
		"no signers":  {encoding.MustMarshal(tx.Tx{Body: tx.Body{ChainID: "c", Type: "t", Payload: []byte{0xa0}}}), tx.ErrMalformed},
		"empty chain": {func() []byte { y := *x; y.Body.ChainID = ""; return encoding.MustMarshal(&y) }(), tx.ErrMalformed},
	}
	for name, c := range cases {
		if _, err := tx.Decode(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	x, _, _ := signed(f)
	raw, _ := x.Encode()
	f.Add(raw)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := tx.Decode(data)
		if err != nil {
			return
		}
		// Anything accepted re-encodes to the same bytes and can be checked safely.
		again, err := d.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted bytes do not re-encode: %v", err)
		}
		_ = tx.VerifyProofs([]*tx.Tx{d})
	})
}

// TestDecodedEncodesAsItsBytes: inside another structure (a block), a decoded
// transaction encodes as its own bytes, and those equal the field-by-field
// encoding of the transaction it came from.
func TestDecodedEncodesAsItsBytes(t *testing.T) {
	x, _, _ := signed(t)
	raw, err := x.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := tx.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		Txs []*tx.Tx `cbor:"1,keyasint"`
	}
	fresh, err := encoding.Marshal(&holder{Txs: []*tx.Tx{x, x}})
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := encoding.Marshal(&holder{Txs: []*tx.Tx{back, back}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, decoded) {
		t.Fatalf("a decoded transaction encodes differently:\n%x\n%x", decoded, fresh)
	}
	if !bytes.Contains(decoded, raw) {
		t.Fatal("the holder does not carry the transaction's bytes")
	}
}

// TestDecodedOfBuilt: a transaction built in the process comes back from
// Decoded as Decode would give it (same ID and bytes, its encoding kept); one
// already decoded comes back as is; a built one of a bad shape is refused.
func TestDecodedOfBuilt(t *testing.T) {
	x, _, _ := signed(t)
	id, err := x.ID()
	if err != nil {
		t.Fatal(err)
	}
	d, err := tx.Decoded(x)
	if err != nil {
		t.Fatal(err)
	}
	if did, _ := d.ID(); did != id || d == x {
		t.Fatalf("Decoded: ID %s (want %s), same pointer %t (want a decoded copy)", did.Short(), id.Short(), d == x)
	}
	if again, err := tx.Decoded(d); err != nil || again != d {
		t.Fatalf("Decoded of a decoded transaction: %p %v, want itself", again, err)
	}
	raw, _ := x.Encode()
	if enc, _ := d.Encode(); !bytes.Equal(enc, raw) {
		t.Fatal("the decoded copy encodes differently")
	}
	x.Proofs = x.Proofs[:1]
	if _, err := tx.Decoded(x); !errors.Is(err, tx.ErrMalformed) {
		t.Fatalf("a built transaction missing a proof: %v, want ErrMalformed", err)
	}
}
