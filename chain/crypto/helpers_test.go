package crypto

import (
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"testing"
)

// detRand returns a deterministic byte source for key generation in tests.
func detRand(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// smallOrderCanonical are the canonical encodings of the eight points of
// small order on edwards25519 (orders 1, 2, 4, 4 and four of order 8), as
// listed in the ZIP-215 specification.
var smallOrderCanonical = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2 (y = -1)
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4 (y = 0)
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4 (y = 0, x negative)
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
}

// fieldP is 2^255 - 19.
var fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// groupL is the order of the edwards25519 prime-order subgroup.
var groupL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// leBytes encodes v (< 2^256) as 32 little-endian bytes.
func leBytes(v *big.Int) []byte {
	be := v.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	return be
}

// leInt decodes 32 little-endian bytes.
func leInt(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

// encodeY encodes field value y (which may be >= p, i.e. non-canonical) with
// the x sign bit.
func encodeY(y *big.Int, sign bool) []byte {
	b := leBytes(y)
	if sign {
		b[31] |= 0x80
	}
	return b
}

// smallOrderEncodings returns all 14 encodings of small-order points that
// decode under ZIP-215: the 8 canonical ones and 6 non-canonical ones (y + p
// for y in {0, 1}, and the x sign bit set where x = 0, for y in {1, -1} and
// y + p in {p, p + 1}).
func smallOrderEncodings(t testing.TB) (canonical, nonCanonical [][]byte) {
	for _, s := range smallOrderCanonical {
		canonical = append(canonical, mustHex(t, s))
	}
	one := big.NewInt(1)
	pPlus1 := new(big.Int).Add(fieldP, one)
	pMinus1 := new(big.Int).Sub(fieldP, one)
	nonCanonical = [][]byte{
		encodeY(one, true),     // identity, x = -0
		encodeY(pMinus1, true), // order 2, x = -0
		encodeY(fieldP, false), // y = p = 0 (mod p), order 4
		encodeY(fieldP, true),  // y = p, other order-4 point
		encodeY(pPlus1, false), // y = p + 1 = 1, identity
		encodeY(pPlus1, true),  // y = p + 1, x = -0
	}
	return canonical, nonCanonical
}

// addL returns sig with L added to its S half: the same S modulo L, but a
// non-canonical (S >= L) encoding.
func addL(sig []byte) []byte {
	out := append([]byte(nil), sig...)
	s := leInt(sig[32:])
	s.Add(s, groupL)
	copy(out[32:], leBytes(s))
	return out
}

// agree checks that VerifyBatch, the scheme's own VerifyBatch (one chunk) and
// Verify give the same verdict, and the same error text, for every item. It
// returns the single-verification results.
func agree(t testing.TB, items []Item) []error {
	t.Helper()
	single := make([]error, len(items))
	for i, it := range items {
		single[i] = Verify(it.Pub, it.Msg, it.Sig)
	}
	check := func(name string, got []error) {
		t.Helper()
		if len(got) != len(items) {
			t.Fatalf("%s: %d results for %d items", name, len(got), len(items))
		}
		for i := range items {
			if (got[i] == nil) != (single[i] == nil) ||
				(got[i] != nil && got[i].Error() != single[i].Error()) {
				t.Fatalf("%s: item %d (%s, pub %x, sig %x): batch %v, single %v",
					name, i, items[i].Pub.Scheme, items[i].Pub.Key, items[i].Sig, got[i], single[i])
			}
		}
	}
	check("VerifyBatch", VerifyBatch(items))

	// Per scheme, one chunk: the scheme's VerifyBatch directly.
	for _, id := range []SchemeID{Ed25519, P256} {
		var sub []Item
		var idx []int
		for i, it := range items {
			if it.Pub.Scheme == id {
				sub = append(sub, it)
				idx = append(idx, i)
			}
		}
		s, _ := Lookup(id)
		got := s.VerifyBatch(sub)
		full := make([]error, len(items))
		copy(full, single)
		for j, i := range idx {
			full[i] = got[j]
		}
		check(string(id)+".VerifyBatch", full)
	}
	return single
}
