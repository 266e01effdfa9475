package crypto

import (
	"fmt"
	"io"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Ed25519 sizes in bytes.
const (
	Ed25519PublicKeySize = ed25519.PublicKeySize // 32
	Ed25519SignatureSize = ed25519.SignatureSize // 64
	Ed25519SeedSize      = ed25519.SeedSize      // 32
)

// zip215 makes single and batch verification apply the ZIP-215 rules:
// cofactored equation, non-canonical A and R encodings and small-order A and R
// accepted, S required to be canonical (S < L).
var zip215 = &ed25519.Options{Verify: ed25519.VerifyOptionsZIP_215}

func init() { Register(Ed25519Scheme{}) }

// Ed25519Scheme is Ed25519 (RFC 8032 signing) with ZIP-215 verification.
type Ed25519Scheme struct{}

// ID returns Ed25519.
func (Ed25519Scheme) ID() SchemeID { return Ed25519 }

// Generate reads a 32-byte seed from rand.
func (Ed25519Scheme) Generate(rand io.Reader) (PrivateKey, error) {
	seed := make([]byte, Ed25519SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("ed25519: reading seed: %w", err)
	}
	return newEd25519Key(seed), nil
}

// PrivateKeyFromBytes restores a key from its 32-byte seed.
func (Ed25519Scheme) PrivateKeyFromBytes(b []byte) (PrivateKey, error) {
	if len(b) != Ed25519SeedSize {
		return nil, fmt.Errorf("%w: ed25519 seed is %d bytes, want %d", ErrBadPrivateKey, len(b), Ed25519SeedSize)
	}
	return newEd25519Key(b), nil
}

// Verify checks an Ed25519 signature under the ZIP-215 rules.
func (Ed25519Scheme) Verify(pub, msg, sig []byte) error {
	if err := ed25519Lengths(pub, sig); err != nil {
		return err
	}
	if ed25519.VerifyWithOptions(pub, msg, sig, zip215) {
		return nil
	}
	return ed25519Why(pub, sig)
}

// VerifyBatch checks items with one curve25519-voi batch verifier (ZIP-215
// rules); when the batch equation fails, the verifier finds the invalid
// entries. A single item is verified alone. It runs on the calling goroutine.
func (s Ed25519Scheme) VerifyBatch(items []Item) []error {
	res := make([]error, len(items))
	if len(items) == 1 {
		res[0] = s.Verify(items[0].Pub.Key, items[0].Msg, items[0].Sig)
		return res
	}
	v := ed25519.NewBatchVerifierWithCapacity(len(items))
	if len(items) >= ed25519PrecomputeMax {
		// voi would expand (precompute tables for) the first keys only to
		// switch to a multiscalar multiplication that does not use them.
		v.ForceNoPublicKeyExpansion()
	}
	idx := make([]int, 0, len(items)) // batch entry -> item index
	for i, it := range items {
		if err := ed25519Lengths(it.Pub.Key, it.Sig); err != nil {
			res[i] = err
			continue
		}
		v.AddWithOptions(it.Pub.Key, it.Msg, it.Sig, zip215)
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return res
	}
	// rand nil: the verifier draws its random weights from crypto/rand. The
	// outcome does not depend on them except with probability about 2^-128.
	if ok, valid := v.Verify(nil); !ok {
		for j, good := range valid {
			if !good {
				i := idx[j]
				res[i] = ed25519Why(items[i].Pub.Key, items[i].Sig)
			}
		}
	}
	return res
}

// ed25519PrecomputeMax is the batch size from which curve25519-voi stops using
// expanded public keys (its batchPippengerThreshold, 94).
const ed25519PrecomputeMax = (190 - 1) / 2

// ed25519Lengths rejects keys and signatures of the wrong length.
func ed25519Lengths(pub, sig []byte) error {
	if len(pub) != Ed25519PublicKeySize {
		return fmt.Errorf("%w: ed25519 public key is %d bytes, want %d", ErrBadPublicKey, len(pub), Ed25519PublicKeySize)
	}
	if len(sig) != Ed25519SignatureSize {
		return fmt.Errorf("%w: ed25519 signature is %d bytes, want %d", ErrBadSignature, len(sig), Ed25519SignatureSize)
	}
	return nil
}

// ed25519Why explains why a correctly sized signature was rejected. Single
// and batch verification share it, so they return the same error.
func ed25519Why(pub, sig []byte) error {
	if !ed25519Decodes(pub) {
		return fmt.Errorf("%w: ed25519 public key is not a curve point", ErrBadPublicKey)
	}
	if !scalar.ScMinimalVartime(sig[32:]) {
		return fmt.Errorf("%w: ed25519 signature S is not reduced (S >= L)", ErrBadSignature)
	}
	if !ed25519Decodes(sig[:32]) {
		return fmt.Errorf("%w: ed25519 signature R is not a curve point", ErrBadSignature)
	}
	return fmt.Errorf("%w: ed25519 signature does not verify", ErrBadSignature)
}

// ed25519Decodes reports whether b (32 bytes) decodes to a curve point,
// accepting non-canonical encodings as ZIP-215 does.
func ed25519Decodes(b []byte) bool {
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(b); err != nil {
		return false
	}
	var p curve.EdwardsPoint
	_, err := p.SetCompressedY(&c)
	return err == nil
}

// Ed25519CheckPublicKey applies the strict rules for registering a new
// ed25519 identity: the canonical encoding of a point that is not of small
// order. Signature verification does not require this (ZIP-215 accepts
// small-order and non-canonical keys); it keeps keys that anyone can sign for,
// such as the all-zero key, out of the identity set.
func Ed25519CheckPublicKey(pub []byte) error {
	if len(pub) != Ed25519PublicKeySize {
		return fmt.Errorf("%w: ed25519 public key is %d bytes, want %d", ErrBadPublicKey, len(pub), Ed25519PublicKeySize)
	}
	var c curve.CompressedEdwardsY
	var p curve.EdwardsPoint
	if _, err := c.SetBytes(pub); err != nil {
		return fmt.Errorf("%w: ed25519 public key: %v", ErrBadPublicKey, err)
	}
	if _, err := p.SetCompressedY(&c); err != nil {
		return fmt.Errorf("%w: ed25519 public key is not a curve point", ErrBadPublicKey)
	}
	if !c.IsCanonicalVartime() {
		return fmt.Errorf("%w: ed25519 public key is not canonically encoded", ErrBadPublicKey)
	}
	if p.IsSmallOrder() {
		return fmt.Errorf("%w: ed25519 public key has small order", ErrBadPublicKey)
	}
	return nil
}

// ed25519Key is an Ed25519 private key; signing is deterministic (RFC 8032).
type ed25519Key struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

func newEd25519Key(seed []byte) *ed25519Key {
	priv := ed25519.NewKeyFromSeed(seed)
	pub := make([]byte, Ed25519PublicKeySize)
	copy(pub, priv[Ed25519SeedSize:])
	return &ed25519Key{priv: priv, pub: PublicKey{Scheme: Ed25519, Key: pub}}
}

// Public returns the public key (a fresh copy).
func (k *ed25519Key) Public() PublicKey {
	return PublicKey{Scheme: Ed25519, Key: append([]byte(nil), k.pub.Key...)}
}

// Sign returns the RFC 8032 signature of msg.
func (k *ed25519Key) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(k.priv, msg), nil
}

// Bytes returns the 32-byte seed.
func (k *ed25519Key) Bytes() []byte { return append([]byte(nil), k.priv.Seed()...) }
