package crypto

import (
	"bytes"
	stded25519 "crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/plugchain/plug/chain/hash"
)

var schemes = []SchemeID{Ed25519, P256}

func TestRoundTrip(t *testing.T) {
	for _, id := range schemes {
		t.Run(string(id), func(t *testing.T) {
			k, err := GenerateKey(id, detRand(1))
			if err != nil {
				t.Fatal(err)
			}
			k2, _ := GenerateKey(id, detRand(1))
			if !k.Public().Equal(k2.Public()) {
				t.Fatal("key generation is not deterministic given the random bytes")
			}
			msg := []byte("transfer 10 PLUG")
			sig, err := k.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(k.Public(), msg, sig); err != nil {
				t.Fatalf("valid signature rejected: %v", err)
			}
			sig2, _ := k.Sign(msg)
			if !bytes.Equal(sig, sig2) {
				t.Fatal("signing is not deterministic")
			}
			// Storage round trip.
			r, err := PrivateKeyFromBytes(id, k.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if !r.Public().Equal(k.Public()) || !bytes.Equal(r.Bytes(), k.Bytes()) {
				t.Fatal("PrivateKeyFromBytes(Bytes()) is a different key")
			}
			if sig3, _ := r.Sign(msg); !bytes.Equal(sig, sig3) {
				t.Fatal("restored key signs differently")
			}
			// Wrong message, wrong key, corrupted signature.
			other, _ := GenerateKey(id, detRand(2))
			for name, err := range map[string]error{
				"message":   Verify(k.Public(), []byte("transfer 11 PLUG"), sig),
				"key":       Verify(other.Public(), msg, sig),
				"sig[0]":    Verify(k.Public(), msg, flip(sig, 0)),
				"sig[last]": Verify(k.Public(), msg, flip(sig, len(sig)-1)),
				"sig[mid]":  Verify(k.Public(), msg, flip(sig, len(sig)/2)),
			} {
				if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadPublicKey) {
					t.Errorf("wrong %s: got %v, want a bad signature", name, err)
				}
			}
			if err := Verify(other.Public(), msg, sig); !errors.Is(err, ErrBadSignature) {
				t.Errorf("wrong key: got %v, want ErrBadSignature", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

// Signatures must be RFC 8032 Ed25519: identical to the standard library's.
func TestEd25519MatchesStdlib(t *testing.T) {
	for seed := range byte(8) {
		k, _ := GenerateKey(Ed25519, detRand(seed))
		std := stded25519.NewKeyFromSeed(k.Bytes())
		if !bytes.Equal(std.Public().(stded25519.PublicKey), k.Public().Key) {
			t.Fatal("public key differs from crypto/ed25519")
		}
		msg := []byte(fmt.Sprint("message ", seed))
		sig, _ := k.Sign(msg)
		if !bytes.Equal(sig, stded25519.Sign(std, msg)) {
			t.Fatal("signature differs from crypto/ed25519")
		}
	}
}

func TestWrongLengths(t *testing.T) {
	ed, _ := GenerateKey(Ed25519, detRand(3))
	p, _ := GenerateKey(P256, detRand(3))
	msg := []byte("m")
	edSig, _ := ed.Sign(msg)
	pSig, _ := p.Sign(msg)
	cases := []struct {
		name string
		pub  PublicKey
		sig  []byte
		want error
	}{
		{"ed25519 nil key", PublicKey{Ed25519, nil}, edSig, ErrBadPublicKey},
		{"ed25519 short key", PublicKey{Ed25519, ed.Public().Key[:31]}, edSig, ErrBadPublicKey},
		{"ed25519 long key", PublicKey{Ed25519, append(ed.Public().Key, 0)}, edSig, ErrBadPublicKey},
		{"ed25519 nil sig", ed.Public(), nil, ErrBadSignature},
		{"ed25519 short sig", ed.Public(), edSig[:63], ErrBadSignature},
		{"ed25519 long sig", ed.Public(), append(edSig, 0), ErrBadSignature},
		{"p256 nil key", PublicKey{P256, nil}, pSig, ErrBadPublicKey},
		{"p256 uncompressed key", PublicKey{P256, make([]byte, 65)}, pSig, ErrBadPublicKey},
		{"p256 short key", PublicKey{P256, p.Public().Key[:32]}, pSig, ErrBadPublicKey},
		{"p256 nil sig", p.Public(), nil, ErrBadSignature},
		{"p256 short sig", p.Public(), pSig[:63], ErrBadSignature},
		{"p256 long sig", p.Public(), append(pSig, 0), ErrBadSignature},
		{"p256 key as ed25519", PublicKey{Ed25519, p.Public().Key}, edSig, ErrBadPublicKey},
		{"unknown scheme", PublicKey{"rsa", ed.Public().Key}, edSig, ErrUnknownScheme},
		{"empty scheme", PublicKey{"", ed.Public().Key}, edSig, ErrUnknownScheme},
	}
	var items []Item
	for _, c := range cases {
		if err := Verify(c.pub, msg, c.sig); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		items = append(items, Item{c.pub, msg, c.sig})
	}
	for i, err := range VerifyBatch(items) {
		if !errors.Is(err, cases[i].want) {
			t.Errorf("batch %s: got %v, want %v", cases[i].name, err, cases[i].want)
		}
	}
	agree(t, items)

	for _, id := range schemes {
		for _, n := range []int{0, 31, 33, 64} {
			if _, err := PrivateKeyFromBytes(id, make([]byte, n)); !errors.Is(err, ErrBadPrivateKey) {
				t.Errorf("%s private key of %d bytes: got %v", id, n, err)
			}
		}
	}
	if _, err := PrivateKeyFromBytes(P256, make([]byte, 32)); !errors.Is(err, ErrBadPrivateKey) {
		t.Errorf("p256 zero scalar: got %v", err)
	}
	if _, err := GenerateKey(Ed25519, bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("ed25519 generation from a short reader succeeded")
	}
	if _, err := GenerateKey("nope", detRand(0)); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("GenerateKey unknown: %v", err)
	}
}

func TestP256Encoding(t *testing.T) {
	k, _ := GenerateKey(P256, detRand(4))
	pub := k.Public()
	if len(pub.Key) != P256PublicKeySize || (pub.Key[0] != 2 && pub.Key[0] != 3) {
		t.Fatalf("public key %x is not a compressed point", pub.Key)
	}
	n := p256N
	// Low-S: every signature we make has s <= n/2, and its high-S twin
	// (r, n-s), valid under plain ECDSA, is rejected.
	for i := range 64 {
		msg := []byte(fmt.Sprint("msg ", i))
		sig, _ := k.Sign(msg)
		s := new(big.Int).SetBytes(sig[32:])
		if s.Cmp(p256HalfN) > 0 {
			t.Fatalf("signature %d has high S", i)
		}
		high := append([]byte(nil), sig...)
		new(big.Int).Sub(n, s).FillBytes(high[32:])
		if err := Verify(pub, msg, high); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("high-S twin accepted: %v", err)
		}
		if err := Verify(pub, msg, sig); err != nil {
			t.Fatal(err)
		}
	}
	msg := []byte("m")
	sig, _ := k.Sign(msg)
	set := func(lo, hi int, v *big.Int) []byte {
		c := append([]byte(nil), sig...)
		v.FillBytes(c[lo:hi])
		return c
	}
	for name, bad := range map[string][]byte{
		"r = 0":       set(0, 32, big.NewInt(0)),
		"r = n":       set(0, 32, n),
		"r = 2^256-1": set(0, 32, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))),
		"s = 0":       set(32, 64, big.NewInt(0)),
		"s = n":       set(32, 64, n),
	} {
		if err := Verify(pub, msg, bad); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	// Public keys: wrong prefix, the other y, x >= p, x not on the curve,
	// the (unencodable) point at infinity's SEC 1 byte.
	p := p256Curve.Params().P
	other := append([]byte(nil), pub.Key...)
	other[0] ^= 1
	xp := make([]byte, 33)
	xp[0] = 2
	new(big.Int).Add(p, big.NewInt(3)).FillBytes(xp[1:])
	for name, key := range map[string][]byte{
		"prefix 0x04": append([]byte{4}, pub.Key[1:]...),
		"prefix 0x00": append([]byte{0}, pub.Key[1:]...),
		"x = p + 3":   xp,
		"x = p":       append([]byte{2}, p.FillBytes(make([]byte, 32))...),
		"x = 2^256-1": append([]byte{3}, bytes.Repeat([]byte{0xff}, 32)...),
		"infinity":    make([]byte, 33),
	} {
		err := Verify(PublicKey{P256, key}, msg, sig)
		if !errors.Is(err, ErrBadPublicKey) {
			t.Errorf("%s: got %v, want ErrBadPublicKey", name, err)
		}
	}
	// The other y is a valid point but not the signer.
	if err := Verify(PublicKey{P256, other}, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("negated key: got %v", err)
	}
	// Find an x with no point on the curve: some prefix-2 key must fail to decode.
	var offCurve bool
	for x := int64(1); x < 64 && !offCurve; x++ {
		key := append([]byte{2}, big.NewInt(x).FillBytes(make([]byte, 32))...)
		if _, err := p256ParsePublicKey(key); errors.Is(err, ErrBadPublicKey) {
			offCurve = true
		}
	}
	if !offCurve {
		t.Error("no x in 1..63 rejected as off the curve")
	}
}

func TestAddress(t *testing.T) {
	k, _ := GenerateKey(Ed25519, detRand(5))
	pub := k.Public()
	a := pub.Address()
	want := hash.Sum(hash.DomainAddress, []byte("ed25519"), []byte{0}, pub.Key)
	if !bytes.Equal(a[:], want[:20]) {
		t.Fatal("address is not the first 20 bytes of the domain hash")
	}
	if a != pub.Address() {
		t.Fatal("address not deterministic")
	}
	// Same key bytes under another scheme: another address.
	if (PublicKey{P256, pub.Key}).Address() == a {
		t.Fatal("two schemes share an address")
	}
	s := a.String()
	if len(s) != 40 || s != fmt.Sprintf("%x", a[:]) {
		t.Fatalf("String() = %q", s)
	}
	b, err := ParseAddress(s)
	if err != nil || b != a {
		t.Fatalf("ParseAddress(String()) = %v, %v", b, err)
	}
	js, _ := json.Marshal(map[string]Address{"a": a})
	var back map[string]Address
	if err := json.Unmarshal(js, &back); err != nil || back["a"] != a {
		t.Fatalf("JSON round trip: %s %v", js, err)
	}
	for _, bad := range []string{"", "00", s[:39], s + "0", s + "00", "zz" + s[2:], "0x" + s} {
		if _, err := ParseAddress(bad); !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q) = %v", bad, err)
		}
	}
	var z Address
	if !z.IsZero() || a.IsZero() {
		t.Fatal("IsZero")
	}
	// PublicKey encodings.
	enc, err := cbor.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	var dec PublicKey
	if err := cbor.Unmarshal(enc, &dec); err != nil || !dec.Equal(pub) {
		t.Fatalf("CBOR round trip: %v", err)
	}
	if enc[0] != 0xa2 || enc[1] != 0x01 {
		t.Fatalf("CBOR PublicKey is not a map keyed by integers: %x", enc)
	}
	js, _ = json.Marshal(pub)
	if err := json.Unmarshal(js, &dec); err != nil || !dec.Equal(pub) {
		t.Fatalf("JSON round trip: %s %v", js, err)
	}
}

type testScheme struct{ id SchemeID }

func (s testScheme) ID() SchemeID                                 { return s.id }
func (testScheme) Generate(io.Reader) (PrivateKey, error)         { return nil, ErrBadPrivateKey }
func (testScheme) PrivateKeyFromBytes([]byte) (PrivateKey, error) { return nil, ErrBadPrivateKey }
func (s testScheme) VerifyBatch(items []Item) []error             { return serialBatch(items, s.Verify) }
func (testScheme) Verify(pub, msg, sig []byte) error {
	// Valid iff sig == pub || msg.
	if bytes.Equal(sig, append(append([]byte(nil), pub...), msg...)) {
		return nil
	}
	return ErrBadSignature
}

func TestRegistry(t *testing.T) {
	if _, err := Lookup("nope"); !errors.Is(err, ErrUnknownScheme) {
		t.Fatalf("Lookup unknown: %v", err)
	}
	for _, id := range schemes {
		s, err := Lookup(id)
		if err != nil || s.ID() != id {
			t.Fatalf("Lookup(%s) = %v, %v", id, s, err)
		}
	}
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("duplicate", func() { Register(Ed25519Scheme{}) })
	mustPanic("nil", func() { Register(nil) })
	mustPanic("empty id", func() { Register(testScheme{}) })

	if _, err := Lookup("test-concat"); err != nil { // -count > 1 runs this again
		Register(testScheme{"test-concat"})
	}
	ids := Schemes()
	if len(ids) < 3 || !containsID(ids, "test-concat") || !containsID(ids, Ed25519) {
		t.Fatalf("Schemes() = %v", ids)
	}
	pub := PublicKey{"test-concat", []byte("k")}
	ed, _ := GenerateKey(Ed25519, detRand(6))
	edSig, _ := ed.Sign([]byte("x"))
	items := []Item{
		{pub, []byte("x"), []byte("kx")},
		{ed.Public(), []byte("x"), edSig},
		{pub, []byte("x"), []byte("ky")},
	}
	res := VerifyBatch(items)
	if res[0] != nil || res[1] != nil || !errors.Is(res[2], ErrBadSignature) {
		t.Fatalf("batch with a registered scheme: %v", res)
	}
}

func containsID(ids []SchemeID, id SchemeID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
