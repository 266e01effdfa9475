// Package keyring stores named signing keys in a directory, one JSON file per
// key (<name>.key).
//
// Two backends write keys: File encrypts each private key at rest (Argon2id
// key derivation with a per-key random salt, then XChaCha20-Poly1305), and Test
// stores it in clear for local testnets, saying so in the file. Public data
// (name, scheme, address, public key) is always stored in clear, so Info, List
// and Resolve never need the passphrase. Files are written atomically (temp
// file, fsync, link or rename, fsync of the directory) with mode 0600 in a
// directory of mode 0700.
//
// A Keyring is safe for concurrent use by the goroutines of one process; two
// processes adding the same name race safely (exactly one wins, the other gets
// ErrExists).
package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plugchain/plug/chain/atomicfile"
	"github.com/plugchain/plug/chain/crypto"
)

// Backend selects how a keyring protects the private keys it writes.
type Backend string

// Keyring backends.
const (
	// File encrypts every private key with a key derived from a passphrase.
	File Backend = "file"
	// Test stores private keys unencrypted. Only for local testnets.
	Test Backend = "test"
)

// ParseBackend returns the backend named s ("file" or "test").
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case File, Test:
		return b, nil
	}
	return "", fmt.Errorf("unknown keyring backend %q: use %q or %q", s, File, Test)
}

// FileVersion is the key file format version this package writes.
const FileVersion = 1

// FileExt is the extension of key files.
const FileExt = ".key"

// MinPassphraseLen is the shortest passphrase accepted for a new encrypted key.
const MinPassphraseLen = 8

// Info is the public description of a stored key.
type Info struct {
	Name      string           // the key's name in the keyring
	Scheme    crypto.SchemeID  // signature scheme
	Address   crypto.Address   // account address, derived from PublicKey
	PublicKey crypto.PublicKey // public key
	Backend   Backend          // backend that wrote the key
	Encrypted bool             // whether the private key is encrypted at rest
	Created   time.Time        // when the key was added or imported (UTC)
	Path      string           // the key file
}

// Keyring is a directory of named keys.
type Keyring struct {
	dir        string
	backend    Backend
	passphrase func() ([]byte, error)
	kdf        KDFParams
	rand       io.Reader
	now        func() time.Time

	mu sync.Mutex // serialises operations, bounding KDF memory use too
}

// Option changes a Keyring's defaults.
type Option func(*Keyring)

// WithKDF sets the key derivation parameters used for keys written from now
// on (keys already stored keep the parameters recorded in their files).
// Tests use it for cheap parameters; production code should keep DefaultKDF.
func WithKDF(p KDFParams) Option { return func(k *Keyring) { k.kdf = p } }

// WithRand sets the source of randomness for keys, salts and nonces
// (crypto/rand by default).
func WithRand(r io.Reader) Option { return func(k *Keyring) { k.rand = r } }

// Open opens the keyring in dir, creating the directory (mode 0700) if needed
// and restricting an existing one to its owner. passphrase is called whenever
// an encrypted key is written or read; it may be nil for the Test backend. It
// is called once per operation, so callers that prompt should cache the answer.
func Open(dir string, backend Backend, passphrase func() ([]byte, error), opts ...Option) (*Keyring, error) {
	if _, err := ParseBackend(string(backend)); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("keyring: empty directory path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k := &Keyring{
		dir:        abs,
		backend:    backend,
		passphrase: passphrase,
		kdf:        DefaultKDF(),
		rand:       rand.Reader,
		now:        time.Now,
	}
	for _, o := range opts {
		o(k)
	}
	if err := k.kdf.check(); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("keyring: cannot create directory %s: %w", abs, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("keyring: %s is not a directory", abs)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(abs, 0o700); err != nil {
			return nil, fmt.Errorf("keyring: directory %s is open to other users (mode %o) and cannot be restricted: %w; run chmod 700 %s",
				abs, st.Mode().Perm(), err, abs)
		}
	}
	return k, nil
}

// Dir returns the keyring's directory (absolute).
func (k *Keyring) Dir() string { return k.dir }

// Backend returns the backend the keyring writes keys with.
func (k *Keyring) Backend() Backend { return k.backend }

// Add generates a new key of scheme under name and stores it.
func (k *Keyring) Add(name string, scheme crypto.SchemeID) (Info, error) {
	s, err := crypto.Lookup(scheme)
	if err != nil {
		return Info{}, unknownScheme(scheme)
	}
	return k.store(name, func() (crypto.PrivateKey, error) { return s.Generate(k.rand) })
}

// Import stores the private key secret (as returned by Export or
// crypto.PrivateKey.Bytes) of scheme under name. It refuses a key that is
// already stored under another name.
func (k *Keyring) Import(name string, scheme crypto.SchemeID, secret []byte) (Info, error) {
	s, err := crypto.Lookup(scheme)
	if err != nil {
		return Info{}, unknownScheme(scheme)
	}
	priv, err := s.PrivateKeyFromBytes(secret)
	if err != nil {
		return Info{}, fmt.Errorf("cannot import key %q: the secret is not a valid %s private key: %w", name, scheme, err)
	}
	return k.store(name, func() (crypto.PrivateKey, error) {
		addr := priv.Public().Address()
		infos, _ := k.list()
		for _, in := range infos {
			if in.Address == addr {
				return nil, newErr(ErrExists, nil, "cannot import key %q: the same key is already stored as %q (address %s)",
					name, in.Name, addr)
			}
		}
		return priv, nil
	})
}

// store checks name, makes the key with mk and writes it without replacing an
// existing file.
func (k *Keyring) store(name string, mk func() (crypto.PrivateKey, error)) (Info, error) {
	if err := CheckName(name); err != nil {
		return Info{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	path := k.path(name)
	if _, err := os.Lstat(path); err == nil {
		return Info{}, k.errExists(name)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("keyring: %w", err)
	}
	priv, err := mk()
	if err != nil {
		return Info{}, err
	}
	pub := priv.Public()
	kf := &keyFile{
		Version:   FileVersion,
		Name:      name,
		Scheme:    pub.Scheme,
		Address:   pub.Address().String(),
		PublicKey: hex.EncodeToString(pub.Key),
		Backend:   k.backend,
		Created:   k.now().UTC().Truncate(time.Second),
	}
	secret := priv.Bytes()
	defer clear(secret)
	switch k.backend {
	case Test:
		kf.Warning = testWarning
		kf.PrivateKey = hex.EncodeToString(secret)
	case File:
		pass, err := k.getPassphrase(name)
		if err != nil {
			return Info{}, err
		}
		defer clear(pass)
		if len(pass) < MinPassphraseLen {
			return Info{}, newErr(ErrWeakPassphrase, nil,
				"passphrase for new key %q is too short (%d bytes): use at least %d characters", name, len(pass), MinPassphraseLen)
		}
		kf.Encrypted = true
		if err := kf.seal(pass, secret, k.kdf, k.rand); err != nil {
			return Info{}, err
		}
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return Info{}, fmt.Errorf("keyring: %w", err)
	}
	data = append(data, '\n')
	if err := atomicfile.WriteNew(path, data, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Info{}, k.errExists(name)
		}
		return Info{}, fmt.Errorf("keyring: cannot write %s: %w", path, err)
	}
	return kf.info(path)
}

// Get returns the private key stored under name, decrypting it with the
// passphrase for the File backend.
func (k *Keyring) Get(name string) (crypto.PrivateKey, error) {
	priv, _, err := k.get(name)
	return priv, err
}

// Export returns the private key bytes stored under name (the form accepted
// by Import and crypto.PrivateKeyFromBytes). Handle them with care.
func (k *Keyring) Export(name string) ([]byte, error) {
	priv, _, err := k.get(name)
	if err != nil {
		return nil, err
	}
	return priv.Bytes(), nil
}

func (k *Keyring) get(name string) (crypto.PrivateKey, Info, error) {
	if err := CheckName(name); err != nil {
		return nil, Info{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	kf, info, err := k.read(name)
	if err != nil {
		return nil, Info{}, err
	}
	if kf.Backend != k.backend {
		return nil, Info{}, k.errMismatch(kf)
	}
	var secret []byte
	if kf.Encrypted {
		pass, err := k.getPassphrase(name)
		if err != nil {
			return nil, Info{}, err
		}
		secret, err = kf.open(pass, info.Path)
		clear(pass)
		if err != nil {
			return nil, Info{}, err
		}
	} else {
		secret, err = hex.DecodeString(kf.PrivateKey)
		if err != nil || len(secret) == 0 {
			return nil, Info{}, corrupt(info.Path, name, "private_key is not hex")
		}
	}
	defer clear(secret)
	priv, err := crypto.PrivateKeyFromBytes(kf.Scheme, secret)
	if err != nil {
		return nil, Info{}, corrupt(info.Path, name, err.Error())
	}
	if !priv.Public().Equal(info.PublicKey) {
		return nil, Info{}, corrupt(info.Path, name, "the private key does not match the stored public key")
	}
	return priv, info, nil
}

// Info returns the public description of the key stored under name. It needs
// no passphrase.
func (k *Keyring) Info(name string) (Info, error) {
	if err := CheckName(name); err != nil {
		return Info{}, err
	}
	_, info, err := k.read(name)
	return info, err
}

// List returns every stored key, sorted by name. Files that cannot be read are
// skipped and reported in the returned error (wrapping ErrCorrupt), alongside
// the keys that could be read.
func (k *Keyring) List() ([]Info, error) {
	return k.list()
}

func (k *Keyring) list() ([]Info, error) {
	ents, err := os.ReadDir(k.dir)
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot read %s: %w", k.dir, err)
	}
	infos := []Info{}
	var errs []error
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, FileExt) || strings.HasPrefix(n, ".") || e.IsDir() {
			continue
		}
		name := strings.TrimSuffix(n, FileExt)
		if CheckName(name) != nil {
			continue
		}
		_, info, err := k.read(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return infos, errors.Join(errs...)
}

// Delete removes the key stored under name. It needs no passphrase and also
// removes a corrupt key file.
func (k *Keyring) Delete(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.Remove(k.path(name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return k.errNotFound(name)
		}
		return fmt.Errorf("keyring: %w", err)
	}
	if err := atomicfile.SyncDir(k.dir); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return nil
}

// Resolve finds a key by name or, failing that, by address (40 hex digits,
// optionally prefixed by 0x).
func (k *Keyring) Resolve(nameOrAddress string) (Info, error) {
	if CheckName(nameOrAddress) == nil {
		info, err := k.Info(nameOrAddress)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return info, err
		}
	}
	s := strings.TrimPrefix(strings.TrimPrefix(nameOrAddress, "0x"), "0X")
	if addr, err := crypto.ParseAddress(s); err == nil {
		infos, _ := k.list()
		for _, in := range infos {
			if in.Address == addr {
				return in, nil
			}
		}
		return Info{}, newErr(ErrNotFound, nil, "no key with address %s in %s: list keys with `plug keys list`", addr, k.dir)
	}
	if err := CheckName(nameOrAddress); err != nil {
		return Info{}, err
	}
	return Info{}, k.errNotFound(nameOrAddress)
}

func (k *Keyring) path(name string) string { return filepath.Join(k.dir, name+FileExt) }

// read loads and checks the public part of name's key file.
func (k *Keyring) read(name string) (*keyFile, Info, error) {
	path := k.path(name)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, Info{}, k.errNotFound(name)
		}
		return nil, Info{}, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, Info{}, fmt.Errorf("keyring: reading %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, Info{}, corrupt(path, name, "file larger than 64 KiB")
	}
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, Info{}, corrupt(path, name, "invalid JSON: "+err.Error())
	}
	if kf.Version > FileVersion {
		return nil, Info{}, newErr(ErrCorrupt, nil,
			"key file %s has format version %d, newer than this plug understands (%d): upgrade plug", path, kf.Version, FileVersion)
	}
	if kf.Version != FileVersion {
		return nil, Info{}, corrupt(path, name, fmt.Sprintf("unknown format version %d", kf.Version))
	}
	if kf.Name != name {
		return nil, Info{}, corrupt(path, name, fmt.Sprintf("the file names key %q, not %q (was it renamed?)", kf.Name, name))
	}
	if kf.Backend != File && kf.Backend != Test {
		return nil, Info{}, corrupt(path, name, fmt.Sprintf("unknown backend %q", kf.Backend))
	}
	if kf.Encrypted != (kf.Backend == File) {
		return nil, Info{}, corrupt(path, name, "the encrypted field disagrees with the backend")
	}
	info, err := kf.info(path)
	if err != nil {
		return nil, Info{}, err
	}
	return &kf, info, nil
}

func (k *Keyring) getPassphrase(name string) ([]byte, error) {
	if k.passphrase == nil {
		return nil, newErr(ErrNoPassphrase, nil, "key %q needs a passphrase, and none was given", name)
	}
	p, err := k.passphrase()
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, newErr(ErrNoPassphrase, nil, "key %q needs a passphrase: the passphrase given is empty", name)
	}
	return p, nil
}

const maxFileSize = 64 << 10
