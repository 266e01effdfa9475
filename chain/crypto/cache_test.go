package crypto_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
)

// TestVerifiedCacheAgreesWithVerify: the cache answers what Verify answers, for
// valid signatures met once or twice, tampered ones, and ones that a valid
// verdict of another message or key must not vouch for.
func TestVerifiedCacheAgreesWithVerify(t *testing.T) {
	c := crypto.NewVerifiedCache(2)
	var keys []crypto.PrivateKey
	for _, s := range []crypto.SchemeID{crypto.Ed25519, crypto.P256} {
		seed := sha256.Sum256([]byte(s))
		k, err := crypto.GenerateKey(s, bytes.NewReader(append(seed[:], seed[:]...)))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	for _, k := range keys {
		msg := []byte("crosschain id")
		sig, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		bad := append([]byte(nil), sig...)
		bad[len(bad)/2] ^= 1
		other := keys[0].Public()
		if k == keys[0] {
			other = keys[1].Public()
		}
		for round := 0; round < 2; round++ {
			for _, tc := range []struct {
				name string
				pub  crypto.PublicKey
				msg  []byte
				sig  []byte
			}{
				{"valid", k.Public(), msg, sig},
				{"tampered signature", k.Public(), msg, bad},
				{"other message", k.Public(), []byte("crosschain iD"), sig},
				{"other key", other, msg, sig},
			} {
				want := crypto.Verify(tc.pub, tc.msg, tc.sig)
				got := c.Verify(tc.pub, tc.msg, tc.sig)
				if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, crypto.ErrBadSignature) && !errors.Is(got, crypto.ErrBadPublicKey)) {
					t.Errorf("%s %s round %d: cache says %v, Verify %v", k.Public().Scheme, tc.name, round, got, want)
				}
			}
		}
	}
}

// TestPrimeRemembersValidOnly: a batch primes the cache with its valid
// signatures only, and Verify still refuses the invalid ones.
func TestPrimeRemembersValidOnly(t *testing.T) {
	c := crypto.NewVerifiedCache(64)
	var items []crypto.Item
	for i := range 40 {
		seed := sha256.Sum256([]byte{byte(i)})
		k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte{byte(i), 'm'}
		sig, _ := k.Sign(msg)
		if i%7 == 3 {
			sig[5] ^= 1
		}
		items = append(items, crypto.Item{Pub: k.Public(), Msg: msg, Sig: sig})
	}
	c.Prime(items)
	c.Prime(items) // again: nothing left to check, nothing changes
	for i, it := range items {
		valid := i%7 != 3
		if c.Known(it.Pub, it.Msg, it.Sig) != valid {
			t.Errorf("item %d: known %t, valid %t", i, !valid, valid)
		}
		if err := c.Verify(it.Pub, it.Msg, it.Sig); (err == nil) != valid {
			t.Errorf("item %d: Verify %v after Prime, valid %t", i, err, valid)
		}
	}
}
