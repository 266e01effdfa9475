package crypto

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
)

// P-256 sizes in bytes.
const (
	P256PublicKeySize  = 33 // SEC 1 compressed point: 0x02/0x03 || x
	P256SignatureSize  = 64 // r || s, each 32 bytes big-endian
	P256PrivateKeySize = 32 // big-endian scalar
)

var (
	p256Curve = elliptic.P256()
	p256N     = p256Curve.Params().N
	p256HalfN = new(big.Int).Rsh(p256N, 1) // floor(n/2): largest allowed s
)

func init() { Register(P256Scheme{}) }

// P256Scheme is ECDSA over NIST P-256 with SHA-256 of the message. Public keys
// are 33-byte compressed points; signatures are fixed 64-byte r||s with
// s <= n/2 (low-S), so every valid signature has exactly one encoding.
// Batches are verified as parallel single verifications.
type P256Scheme struct{}

// ID returns P256.
func (P256Scheme) ID() SchemeID { return P256 }

// Generate reads 32-byte candidate scalars from rand until one is in [1, n-1].
func (P256Scheme) Generate(rand io.Reader) (PrivateKey, error) {
	var b [P256PrivateKeySize]byte
	for range 64 { // a candidate fails with probability about 2^-32
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return nil, fmt.Errorf("p256: reading key: %w", err)
		}
		if k, err := newP256Key(b[:]); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: p256: random source gave no valid scalar", ErrBadPrivateKey)
}

// PrivateKeyFromBytes restores a key from its 32-byte big-endian scalar.
func (P256Scheme) PrivateKeyFromBytes(b []byte) (PrivateKey, error) {
	return newP256Key(b)
}

// Verify checks a P-256 signature: 33-byte compressed key, 64-byte low-S r||s
// over SHA-256(msg).
func (P256Scheme) Verify(pub, msg, sig []byte) error {
	pk, err := p256ParsePublicKey(pub)
	if err != nil {
		return err
	}
	r, s, err := p256ParseSignature(sig)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(msg)
	if !ecdsa.Verify(pk, digest[:], r, s) {
		return fmt.Errorf("%w: p256 signature does not verify", ErrBadSignature)
	}
	return nil
}

// VerifyBatch verifies items one by one (ECDSA has no batch equation);
// package-level VerifyBatch spreads them over all cores.
func (s P256Scheme) VerifyBatch(items []Item) []error { return serialBatch(items, s.Verify) }

// p256ParsePublicKey decodes a compressed point, rejecting other forms, x >= p,
// points off the curve and the point at infinity.
func p256ParsePublicKey(pub []byte) (*ecdsa.PublicKey, error) {
	if len(pub) != P256PublicKeySize {
		return nil, fmt.Errorf("%w: p256 public key is %d bytes, want %d (compressed)", ErrBadPublicKey, len(pub), P256PublicKeySize)
	}
	if pub[0] != 2 && pub[0] != 3 {
		return nil, fmt.Errorf("%w: p256 public key prefix %#x, want 0x02 or 0x03", ErrBadPublicKey, pub[0])
	}
	x, y := elliptic.UnmarshalCompressed(p256Curve, pub)
	if x == nil {
		return nil, fmt.Errorf("%w: p256 public key is not a curve point", ErrBadPublicKey)
	}
	var u [1 + 2*32]byte
	u[0] = 4
	x.FillBytes(u[1:33])
	y.FillBytes(u[33:])
	pk, err := ecdsa.ParseUncompressedPublicKey(p256Curve, u[:])
	if err != nil {
		return nil, fmt.Errorf("%w: p256 public key: %v", ErrBadPublicKey, err)
	}
	return pk, nil
}

// p256ParseSignature splits r||s and checks 1 <= r < n and 1 <= s <= n/2.
func p256ParseSignature(sig []byte) (r, s *big.Int, err error) {
	if len(sig) != P256SignatureSize {
		return nil, nil, fmt.Errorf("%w: p256 signature is %d bytes, want %d", ErrBadSignature, len(sig), P256SignatureSize)
	}
	r = new(big.Int).SetBytes(sig[:32])
	s = new(big.Int).SetBytes(sig[32:])
	if r.Sign() == 0 || r.Cmp(p256N) >= 0 {
		return nil, nil, fmt.Errorf("%w: p256 signature r out of range", ErrBadSignature)
	}
	if s.Sign() == 0 || s.Cmp(p256HalfN) > 0 {
		return nil, nil, fmt.Errorf("%w: p256 signature s is zero or above n/2 (high-S)", ErrBadSignature)
	}
	return r, s, nil
}

// p256Key is a P-256 private key; signing is deterministic (RFC 6979) and
// normalised to low S.
type p256Key struct {
	priv *ecdsa.PrivateKey
	pub  []byte // compressed
}

func newP256Key(b []byte) (*p256Key, error) {
	if len(b) != P256PrivateKeySize {
		return nil, fmt.Errorf("%w: p256 private key is %d bytes, want %d", ErrBadPrivateKey, len(b), P256PrivateKeySize)
	}
	priv, err := ecdsa.ParseRawPrivateKey(p256Curve, b)
	if err != nil {
		return nil, fmt.Errorf("%w: p256: %v", ErrBadPrivateKey, err)
	}
	u, err := priv.PublicKey.Bytes() // 0x04 || x || y
	if err != nil {
		return nil, fmt.Errorf("%w: p256: %v", ErrBadPrivateKey, err)
	}
	pub := make([]byte, P256PublicKeySize)
	pub[0] = 2 | u[64]&1
	copy(pub[1:], u[1:33])
	return &p256Key{priv: priv, pub: pub}, nil
}

// Public returns the compressed public key (a fresh copy).
func (k *p256Key) Public() PublicKey {
	return PublicKey{Scheme: P256, Key: append([]byte(nil), k.pub...)}
}

// Sign returns the deterministic (RFC 6979) low-S r||s signature of SHA-256(msg).
func (k *p256Key) Sign(msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	der, err := k.priv.Sign(nil, digest[:], crypto.SHA256) // nil rand: RFC 6979
	if err != nil {
		return nil, fmt.Errorf("p256: sign: %w", err)
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("p256: sign: bad DER signature from crypto/ecdsa")
	}
	if rs.S.Cmp(p256HalfN) > 0 {
		rs.S.Sub(p256N, rs.S)
	}
	sig := make([]byte, P256SignatureSize)
	rs.R.FillBytes(sig[:32])
	rs.S.FillBytes(sig[32:])
	return sig, nil
}

// Bytes returns the 32-byte big-endian scalar.
func (k *p256Key) Bytes() []byte {
	b, err := k.priv.Bytes()
	if err != nil { // cannot happen for a P-256 key built by newP256Key
		panic("crypto: p256 private key encoding: " + err.Error())
	}
	return b
}
