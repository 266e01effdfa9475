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
