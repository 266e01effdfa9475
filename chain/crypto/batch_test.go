package crypto

import (
	"errors"
	"fmt"
	"math/big"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"pgregory.net/rapid"
)

// signed returns n valid items alternating between keys of the given schemes.
func signed(t testing.TB, n int, ids ...SchemeID) []Item {
	t.Helper()
	var keys []PrivateKey
	for i, id := range ids {
		for j := range 4 {
			k, err := GenerateKey(id, detRand(byte(16*i+j)))
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
	}
	items := make([]Item, n)
	for i := range items {
		k := keys[i%len(keys)]
		msg := []byte(fmt.Sprintf("tx %d", i))
		sig, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		items[i] = Item{Pub: k.Public(), Msg: msg, Sig: sig}
	}
	return items
}

func TestBatchEmptyAndOne(t *testing.T) {
	if res := VerifyBatch(nil); len(res) != 0 {
		t.Fatalf("empty batch: %v", res)
	}
	if res := (Ed25519Scheme{}).VerifyBatch(nil); len(res) != 0 {
		t.Fatalf("empty ed25519 batch: %v", res)
	}
	for _, id := range schemes {
		it := signed(t, 1, id)
		if res := VerifyBatch(it); len(res) != 1 || res[0] != nil {
			t.Fatalf("%s batch of one valid: %v", id, res)
		}
		it[0].Msg = []byte("other")
		if res := VerifyBatch(it); len(res) != 1 || !errors.Is(res[0], ErrBadSignature) {
			t.Fatalf("%s batch of one invalid: %v", id, res)
		}
		agree(t, it)
	}
}

// Batches of every size around the chunking thresholds, all valid, and with
// the first, last or a middle item broken.
func TestBatchMixed(t *testing.T) {
	base := signed(t, 300, Ed25519, P256, Ed25519)
	for _, n := range []int{2, 3, 31, 32, 33, 63, 64, 65, 97, 128, 300} {
		for _, bad := range [][]int{nil, {0}, {n - 1}, {n / 2}, {0, n / 3, n - 1}} {
			items := append([]Item(nil), base[:n]...)
			want := make([]bool, n)
			for _, i := range bad {
				if !want[i] {
					items[i].Sig = flip(items[i].Sig, 5)
					want[i] = true
				}
			}
			res := VerifyBatch(items)
			for i := range items {
				if (res[i] != nil) != want[i] {
					t.Fatalf("n=%d bad=%v: item %d result %v", n, bad, i, res[i])
				}
				if want[i] && !errors.Is(res[i], ErrBadSignature) {
					t.Fatalf("n=%d: item %d error %v is not ErrBadSignature", n, i, res[i])
				}
			}
			agree(t, items)
		}
	}
	// Many invalid: every third item broken in assorted ways.
	items := append([]Item(nil), base...)
	for i := 0; i < len(items); i += 3 {
		switch i % 4 {
		case 0:
			items[i].Msg = append(items[i].Msg, '!')
		case 1:
			items[i].Sig = items[i].Sig[:10]
		case 2:
			items[i].Pub = items[(i+1)%len(items)].Pub
		case 3:
			items[i].Pub.Scheme = "unknown"
		}
	}
	res := agree(t, items)
	for i := range items {
		if (res[i] != nil) != (i%3 == 0) {
			t.Fatalf("item %d: %v", i, res[i])
		}
	}
}

// S >= L (S + L has the same value modulo L, so the group equation holds) must
// be rejected by both paths.
func TestNonCanonicalS(t *testing.T) {
	items := signed(t, 40, Ed25519)
	for i := 0; i < len(items); i += 5 {
		items[i].Sig = addL(items[i].Sig)
	}
	// And S = L exactly, with a small-order R and key (otherwise valid).
	can, _ := smallOrderEncodings(t)
	sig := append(append([]byte(nil), can[0]...), leBytes(groupL)...)
	items = append(items, Item{PublicKey{Ed25519, can[0]}, []byte("m"), sig})
	res := agree(t, items)
	for i, err := range res {
		bad := i%5 == 0 || i == len(items)-1
		if bad != (err != nil) {
			t.Fatalf("item %d: %v", i, err)
		}
		if bad && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("item %d: %v", i, err)
		}
	}
}

// ZIP-215: every combination of small-order A and small-order R, in canonical
// and non-canonical encodings, with S = 0 satisfies the cofactored equation and
// must be accepted by both paths (these are the 196 cases of the ZIP-215
// test set). With S = 1 none is valid.
func TestSmallOrderZIP215(t *testing.T) {
	can, non := smallOrderEncodings(t)
	all := append(append([][]byte(nil), can...), non...)
	for i, e := range all {
		var c curve.CompressedEdwardsY
		var p curve.EdwardsPoint
		if _, err := c.SetBytes(e); err != nil {
			t.Fatal(err)
		}
		if _, err := p.SetCompressedY(&c); err != nil {
			t.Fatalf("encoding %d (%x) does not decode", i, e)
		}
		if !p.IsSmallOrder() {
			t.Fatalf("encoding %d (%x) is not small order", i, e)
		}
		if c.IsCanonicalVartime() != (i < len(can)) {
			t.Fatalf("encoding %d (%x): canonical = %v", i, e, c.IsCanonicalVartime())
		}
	}
	msg := []byte("Zcash")
	fips := &ed25519.Options{Verify: ed25519.VerifyOptionsFIPS_186_5}
	var items []Item
	var wantValid []bool
	defaultRules := 0
	for _, a := range all {
		for _, r := range all {
			for _, s := range []int64{0, 1} {
				sig := append(append([]byte(nil), r...), leBytes(big.NewInt(s))...)
				items = append(items, Item{PublicKey{Ed25519, a}, msg, sig})
				wantValid = append(wantValid, s == 0)
				if s == 0 && ed25519.VerifyWithOptions(a, msg, sig, fips) {
					defaultRules++
				}
			}
		}
	}
	if len(items) != 2*196 {
		t.Fatalf("%d cases, want 2*196", len(items))
	}
	// RFC 8032 / FIPS 186-5 rules (canonical A and R) reject the non-canonical ones:
	// the set really exercises what ZIP-215 changes.
	if defaultRules != len(can)*len(can) {
		t.Fatalf("default rules accept %d cases, want %d", defaultRules, len(can)*len(can))
	}
	// Mixed with ordinary valid and invalid signatures.
	valid := signed(t, 64, Ed25519)
	valid[7].Sig = flip(valid[7].Sig, 40)
	for i := range valid {
		items = append(items, valid[i])
		wantValid = append(wantValid, i != 7)
	}
	res := agree(t, items)
	for i, err := range res {
		if (err == nil) != wantValid[i] {
			t.Fatalf("item %d (pub %x sig %x): %v", i, items[i].Pub.Key, items[i].Sig, err)
		}
	}
}

// Non-canonical encodings (y + p, for y < 19) of points of large order, as A
// and as R, with arbitrary S: batch and single must agree item by item.
func TestNonCanonicalLargeOrder(t *testing.T) {
	valid := signed(t, 8, Ed25519)
	var encs [][]byte
	for y := int64(2); y < 19; y++ {
		for _, sign := range []bool{false, true} {
			e := encodeY(new(big.Int).Add(fieldP, big.NewInt(y)), sign)
			if ed25519Decodes(e) {
				encs = append(encs, e)
			}
		}
	}
	if len(encs) == 0 {
		t.Fatal("no non-canonical encoding decodes")
	}
	t.Logf("%d non-canonical large-order encodings decode", len(encs))
	var items []Item
	for i, e := range encs {
		v := valid[i%len(valid)]
		// As A, with a real signature by someone else.
		items = append(items, Item{PublicKey{Ed25519, e}, v.Msg, v.Sig})
		// As R, with a real S and key.
		sig := append(append([]byte(nil), e...), v.Sig[32:]...)
		items = append(items, Item{v.Pub, v.Msg, sig})
		// As both, S = 0.
		sig = append(append([]byte(nil), e...), make([]byte, 32)...)
		items = append(items, Item{PublicKey{Ed25519, e}, v.Msg, sig})
		items = append(items, v)
	}
	res := agree(t, items)
	for i, err := range res {
		if (i%4 == 3) != (err == nil) {
			t.Fatalf("item %d: %v", i, err)
		}
	}
}

// The all-zero key is the canonical encoding of a point of order 4. ZIP-215
// accepts it (with R of small order and S = 0 it "signs" any message), so
// the registration check must reject it.
func TestAllZeroKey(t *testing.T) {
	zero := make([]byte, 32)
	can, _ := smallOrderEncodings(t)
	var items []Item
	for _, r := range can {
		sig := append(append([]byte(nil), r...), make([]byte, 32)...)
		items = append(items, Item{PublicKey{Ed25519, zero}, []byte("anything"), sig})
	}
	items = append(items, Item{PublicKey{Ed25519, zero}, []byte("m"), make([]byte, 64)})
	items = append(items, Item{PublicKey{Ed25519, zero}, []byte("m"), addL(make([]byte, 64))})
	res := agree(t, items)
	for i, err := range res {
		if (i == len(items)-1) != (err != nil) {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	if err := Ed25519CheckPublicKey(zero); !errors.Is(err, ErrBadPublicKey) {
		t.Fatalf("registration check accepts the zero key: %v", err)
	}
	_, non := smallOrderEncodings(t)
	for _, k := range append(can, non...) {
		if err := Ed25519CheckPublicKey(k); !errors.Is(err, ErrBadPublicKey) {
			t.Fatalf("registration check accepts %x", k)
		}
	}
	for _, it := range signed(t, 4, Ed25519) {
		if err := Ed25519CheckPublicKey(it.Pub.Key); err != nil {
			t.Fatalf("registration check rejects a real key: %v", err)
		}
	}
	// An encoding that is not a point (y = 2 has no x) is a bad public key in
	// both paths.
	notPoint := encodeY(big.NewInt(2), false)
	if ed25519Decodes(notPoint) {
		t.Fatal("y = 2 decodes; pick another encoding")
	}
	it := signed(t, 3, Ed25519)
	it[1].Pub.Key = notPoint
	res = agree(t, it)
	if !errors.Is(res[1], ErrBadPublicKey) || res[0] != nil || res[2] != nil {
		t.Fatalf("not-a-point key: %v", res)
	}
}

// Property: for random mixes of valid and corrupted items of both schemes,
// VerifyBatch(items)[i] == nil iff Verify(item i) == nil.
func TestBatchAgreesWithSingleRapid(t *testing.T) {
	pool := signed(t, 48, Ed25519, P256)
	can, non := smallOrderEncodings(t)
	small := append(append([][]byte(nil), can...), non...)
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, 150).Draw(rt, "n")
		items := make([]Item, n)
		expectValid := make([]int, n) // 1 valid, 0 invalid, -1 unknown
		for i := range items {
			it := pool[rapid.IntRange(0, len(pool)-1).Draw(rt, "item")]
			it.Sig = append([]byte(nil), it.Sig...)
			it.Msg = append([]byte(nil), it.Msg...)
			expectValid[i] = 0
			switch rapid.IntRange(0, 11).Draw(rt, "how") {
			case 0, 1, 2, 3:
				expectValid[i] = 1
			case 4:
				it.Sig[rapid.IntRange(0, len(it.Sig)-1).Draw(rt, "at")] ^= byte(rapid.IntRange(1, 255).Draw(rt, "x"))
			case 5:
				it.Msg = append(it.Msg, byte(rapid.IntRange(0, 255).Draw(rt, "b")))
			case 6:
				it.Pub = pool[rapid.IntRange(0, len(pool)-1).Draw(rt, "other")].Pub
				expectValid[i] = -1 // may be the same key
			case 7:
				it.Sig = it.Sig[:rapid.IntRange(0, len(it.Sig)-1).Draw(rt, "len")]
			case 8:
				if it.Pub.Scheme == Ed25519 {
					it.Sig = addL(it.Sig)
				} else {
					it.Pub.Key = append([]byte(nil), it.Pub.Key...)
					it.Pub.Key[0] ^= 1 // the other y
				}
			case 9: // small-order A and R, S random small: valid iff S = 0
				s := rapid.IntRange(0, 2).Draw(rt, "s")
				a := small[rapid.IntRange(0, len(small)-1).Draw(rt, "A")]
				r := small[rapid.IntRange(0, len(small)-1).Draw(rt, "R")]
				it.Pub = PublicKey{Ed25519, a}
				it.Sig = append(append([]byte(nil), r...), leBytes(big.NewInt(int64(s)))...)
				if s == 0 {
					expectValid[i] = 1
				}
			case 10: // random bytes of the right sizes
				it.Pub.Key = rapid.SliceOfN(rapid.Byte(), len(it.Pub.Key), len(it.Pub.Key)).Draw(rt, "key")
				it.Sig = rapid.SliceOfN(rapid.Byte(), len(it.Sig), len(it.Sig)).Draw(rt, "sig")
			case 11:
				it.Pub.Scheme = "unknown"
			}
			items[i] = it
		}
		single := make([]error, n)
		for i, it := range items {
			single[i] = Verify(it.Pub, it.Msg, it.Sig)
			if expectValid[i] >= 0 && (single[i] == nil) != (expectValid[i] == 1) {
				rt.Fatalf("item %d: Verify = %v, expected valid = %v", i, single[i], expectValid[i] == 1)
			}
		}
		batch := VerifyBatch(items)
		if len(batch) != n {
			rt.Fatalf("%d results for %d items", len(batch), n)
		}
		for i := range items {
			if (batch[i] == nil) != (single[i] == nil) {
				rt.Fatalf("item %d: batch %v, single %v", i, batch[i], single[i])
			}
		}
	})
}
