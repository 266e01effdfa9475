package keyring

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/plugchain/plug/chain/crypto"
)

// KDFArgon2id names the Argon2id key derivation function (RFC 9106).
const KDFArgon2id = "argon2id"

// CipherXChaCha20Poly1305 names the AEAD that encrypts private keys.
const CipherXChaCha20Poly1305 = "xchacha20-poly1305"

// KDFParams are the key derivation parameters recorded in each encrypted key
// file, so that the defaults can change without breaking stored keys.
type KDFParams struct {
	Algorithm string `json:"algorithm"`  // KDFArgon2id
	Time      uint32 `json:"time"`       // passes over memory
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`    // parallelism
}

// DefaultKDF returns the production parameters: Argon2id, 3 passes, 64 MiB,
// 2 threads (RFC 9106's second recommended option, with fewer lanes).
func DefaultKDF() KDFParams {
	return KDFParams{Algorithm: KDFArgon2id, Time: 3, MemoryKiB: 64 << 10, Threads: 2}
}

// Limits on parameters read from files, so that a crafted file cannot make
// the keyring spend unbounded memory or time.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
	saltSize        = 16
	keySize         = chacha20poly1305.KeySize
)

func (p KDFParams) check() error {
	switch {
	case p.Algorithm != KDFArgon2id:
		return fmt.Errorf("unsupported key derivation function %q (want %q)", p.Algorithm, KDFArgon2id)
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range 1..%d", p.Time, maxKDFTime)
	case p.MemoryKiB < 8*uint32(max(p.Threads, 1)) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range 8*threads..%d", p.MemoryKiB, maxKDFMemoryKiB)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	}
	return nil
}

func (p KDFParams) derive(pass, salt []byte) []byte {
	return argon2.IDKey(pass, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
}

const testWarning = "UNENCRYPTED test key: anyone who can read this file controls the key; use only for local testnets"

// keyFile is the JSON form of a stored key.
type keyFile struct {
	Version   int             `json:"version"`
	Name      string          `json:"name"`
	Scheme    crypto.SchemeID `json:"scheme"`
	Address   string          `json:"address"`
	PublicKey string          `json:"public_key"` // hex
	Backend   Backend         `json:"backend"`
	Encrypted bool            `json:"encrypted"`
	Created   time.Time       `json:"created"`

	// File backend.
	KDF        *KDFParams `json:"kdf,omitempty"`
	Salt       string     `json:"salt,omitempty"`       // hex
	Cipher     string     `json:"cipher,omitempty"`     // CipherXChaCha20Poly1305
	Nonce      string     `json:"nonce,omitempty"`      // hex, 24 bytes
	Ciphertext string     `json:"ciphertext,omitempty"` // hex, sealed private key bytes

	// Test backend.
	Warning    string `json:"warning,omitempty"`
	PrivateKey string `json:"private_key,omitempty"` // hex, unencrypted
}

// aad binds the public fields to the ciphertext: editing the name, scheme or
// public key of an encrypted file makes decryption fail.
func (kf *keyFile) aad() []byte {
	return fmt.Appendf(nil, "plug-keyring\x00v%d\x00%s\x00%s\x00%s", kf.Version, kf.Name, kf.Scheme, kf.PublicKey)
}

// seal encrypts secret into kf under a key derived from pass.
func (kf *keyFile) seal(pass, secret []byte, p KDFParams, rand io.Reader) error {
	salt := make([]byte, saltSize)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return fmt.Errorf("keyring: reading randomness: %w", err)
	}
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return fmt.Errorf("keyring: reading randomness: %w", err)
	}
	key := p.derive(pass, salt)
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	kf.KDF = &p
	kf.Salt = hex.EncodeToString(salt)
	kf.Cipher = CipherXChaCha20Poly1305
	kf.Nonce = hex.EncodeToString(nonce)
	kf.Ciphertext = hex.EncodeToString(aead.Seal(nil, nonce, secret, kf.aad()))
	return nil
}

// open decrypts the private key bytes of kf with pass.
func (kf *keyFile) open(pass []byte, path string) ([]byte, error) {
	if kf.KDF == nil {
		return nil, corrupt(path, kf.Name, "no kdf parameters")
	}
	if err := kf.KDF.check(); err != nil {
		return nil, corrupt(path, kf.Name, err.Error())
	}
	if kf.Cipher != CipherXChaCha20Poly1305 {
		return nil, corrupt(path, kf.Name, fmt.Sprintf("unsupported cipher %q", kf.Cipher))
	}
	salt, err := hex.DecodeString(kf.Salt)
	if err != nil || len(salt) < saltSize {
		return nil, corrupt(path, kf.Name, "bad salt")
	}
	nonce, err := hex.DecodeString(kf.Nonce)
	if err != nil || len(nonce) != chacha20poly1305.NonceSizeX {
		return nil, corrupt(path, kf.Name, "bad nonce")
	}
	ct, err := hex.DecodeString(kf.Ciphertext)
	if err != nil || len(ct) < chacha20poly1305.Overhead {
		return nil, corrupt(path, kf.Name, "bad ciphertext")
	}
	key := kf.KDF.derive(pass, salt)
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	secret, err := aead.Open(nil, nonce, ct, kf.aad())
	if err != nil {
		return nil, newErr(ErrWrongPassphrase, nil,
			"cannot decrypt key %q: wrong passphrase, or the file %s was altered: check the passphrase you gave", kf.Name, path)
	}
	return secret, nil
}

// info checks and returns the public part of kf.
func (kf *keyFile) info(path string) (Info, error) {
	pk, err := hex.DecodeString(kf.PublicKey)
	if err != nil || len(pk) == 0 {
		return Info{}, corrupt(path, kf.Name, "public_key is not hex")
	}
	pub := crypto.PublicKey{Scheme: kf.Scheme, Key: pk}
	addr, err := crypto.ParseAddress(kf.Address)
	if err != nil {
		return Info{}, corrupt(path, kf.Name, "bad address")
	}
	if addr != pub.Address() {
		return Info{}, corrupt(path, kf.Name, "the address does not match the public key")
	}
	return Info{
		Name:      kf.Name,
		Scheme:    kf.Scheme,
		Address:   addr,
		PublicKey: pub,
		Backend:   kf.Backend,
		Encrypted: kf.Encrypted,
		Created:   kf.Created,
		Path:      path,
	}, nil
}
