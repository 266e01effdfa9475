package keyring

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
)

// cheapKDF keeps tests fast; production uses DefaultKDF.
var cheapKDF = KDFParams{Algorithm: KDFArgon2id, Time: 1, MemoryKiB: 64, Threads: 1}

func pass(p string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(p), nil }
}

func open(t *testing.T, dir string, b Backend, p string) *Keyring {
	t.Helper()
	var pf func() ([]byte, error)
	if p != "" {
		pf = pass(p)
	}
	k, err := Open(dir, b, pf, WithKDF(cheapKDF))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	for _, b := range []Backend{File, Test} {
		for _, s := range []crypto.SchemeID{crypto.Ed25519, crypto.P256} {
			t.Run(fmt.Sprintf("%s/%s", b, s), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "keys")
				k := open(t, dir, b, "correct horse")
				info, err := k.Add("alice", s)
				if err != nil {
					t.Fatal(err)
				}
				if info.Name != "alice" || info.Scheme != s || info.Backend != b || info.Encrypted != (b == File) {
					t.Fatalf("info = %+v", info)
				}
				if info.Address != info.PublicKey.Address() {
					t.Fatal("address does not match public key")
				}

				// A fresh Keyring on the same directory reads it back.
				k2 := open(t, dir, b, "correct horse")
				got, err := k2.Info("alice")
				if err != nil {
					t.Fatal(err)
				}
				if got.Address != info.Address || !got.PublicKey.Equal(info.PublicKey) || !got.Created.Equal(info.Created) {
					t.Fatalf("Info = %+v, want %+v", got, info)
				}
				priv, err := k2.Get("alice")
				if err != nil {
					t.Fatal(err)
				}
				msg := []byte("hello")
				sig, err := priv.Sign(msg)
				if err != nil {
					t.Fatal(err)
				}
				if err := crypto.Verify(info.PublicKey, msg, sig); err != nil {
					t.Fatal(err)
				}

				// Export, import elsewhere, same address.
				secret, err := k2.Export("alice")
				if err != nil {
					t.Fatal(err)
				}
				k3 := open(t, filepath.Join(t.TempDir(), "other"), b, "another passphrase")
				imp, err := k3.Import("alice2", s, secret)
				if err != nil {
					t.Fatal(err)
				}
				if imp.Address != info.Address {
					t.Fatalf("imported address %s, want %s", imp.Address, info.Address)
				}
				// The same key under a second name in one keyring is refused.
				if _, err := k3.Import("alice3", s, secret); !errors.Is(err, ErrExists) {
					t.Fatalf("duplicate import: %v", err)
				}

				// Secrets appear in the file only for the Test backend.
				data, err := os.ReadFile(info.Path)
				if err != nil {
					t.Fatal(err)
				}
				hasSecret := strings.Contains(string(data), hex.EncodeToString(secret))
				if hasSecret != (b == Test) {
					t.Fatalf("backend %s: secret in clear = %v", b, hasSecret)
				}
				if b == Test && !strings.Contains(string(data), "UNENCRYPTED") {
					t.Fatal("test key file does not say it is unencrypted")
				}

				if err := k2.Delete("alice"); err != nil {
					t.Fatal(err)
				}
				if _, err := k2.Info("alice"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("after delete: %v", err)
				}
				if err := k2.Delete("alice"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("second delete: %v", err)
				}
			})
		}
	}
}

func TestFileFormat(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, File, "correct horse")
	info, err := k.Add("bob", crypto.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	data, _ := os.ReadFile(info.Path)
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"version", "name", "scheme", "address", "public_key", "kdf", "salt", "nonce", "ciphertext", "cipher"} {
		if _, ok := m[f]; !ok {
			t.Errorf("field %q missing from %s", f, data)
		}
	}
	if _, ok := m["private_key"]; ok {
		t.Error("encrypted file has private_key")
	}
	kdf := m["kdf"].(map[string]any)
	if kdf["algorithm"] != KDFArgon2id || kdf["memory_kib"] != float64(cheapKDF.MemoryKiB) {
		t.Errorf("kdf = %v", kdf)
	}
	if DefaultKDF().check() != nil {
		t.Error("DefaultKDF invalid")
	}
}

func TestWrongPassphrase(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, File, "correct horse")
	if _, err := k.Add("alice", crypto.Ed25519); err != nil {
		t.Fatal(err)
	}
	bad := open(t, dir, File, "wrong horse!")
	_, err := bad.Get("alice")
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Get with wrong passphrase: %v", err)
	}
	if !strings.Contains(err.Error(), `"alice"`) {
		t.Errorf("message does not name the key: %v", err)
	}
	if _, err := bad.Export("alice"); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Export with wrong passphrase: %v", err)
	}
	// Info needs no passphrase at all.
	nop, err := Open(dir, File, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nop.Info("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := nop.Get("alice"); !errors.Is(err, ErrNoPassphrase) {
		t.Fatalf("Get without passphrase: %v", err)
	}
	// New keys need a passphrase of some length.
	short := open(t, dir, File, "short")
	if _, err := short.Add("carol", crypto.Ed25519); !errors.Is(err, ErrWeakPassphrase) {
		t.Fatalf("short passphrase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "carol.key")); !os.IsNotExist(err) {
		t.Fatal("key written despite the error")
	}
}

func TestTamper(t *testing.T) {
	edit := func(t *testing.T, path string, f func(m map[string]any)) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		data, _ = json.Marshal(m)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	flipHex := func(s string) string {
		b, _ := hex.DecodeString(s)
		b[len(b)/2] ^= 1
		return hex.EncodeToString(b)
	}
	other, _ := crypto.GenerateKey(crypto.Ed25519, nil2zero{})
	otherPub := other.Public()
	cases := []struct {
		name string
		edit func(m map[string]any)
		want error
	}{
		{"ciphertext", func(m map[string]any) { m["ciphertext"] = flipHex(m["ciphertext"].(string)) }, ErrWrongPassphrase},
		{"nonce", func(m map[string]any) { m["nonce"] = flipHex(m["nonce"].(string)) }, ErrWrongPassphrase},
		{"salt", func(m map[string]any) { m["salt"] = flipHex(m["salt"].(string)) }, ErrWrongPassphrase},
		{"public key and address", func(m map[string]any) {
			m["public_key"] = hex.EncodeToString(otherPub.Key)
			m["address"] = otherPub.Address().String()
		}, ErrWrongPassphrase},
		{"address", func(m map[string]any) { m["address"] = otherPub.Address().String() }, ErrCorrupt},
		{"name", func(m map[string]any) { m["name"] = "mallory" }, ErrCorrupt},
		{"version", func(m map[string]any) { m["version"] = 2 }, ErrCorrupt},
		{"backend", func(m map[string]any) { m["backend"] = "test"; m["encrypted"] = false }, ErrBackendMismatch},
		{"kdf memory", func(m map[string]any) { m["kdf"].(map[string]any)["memory_kib"] = 1 << 30 }, ErrCorrupt},
		{"unknown field", func(m map[string]any) { m["extra"] = 1 }, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			k := open(t, dir, File, "correct horse")
			info, err := k.Add("alice", crypto.Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			edit(t, info.Path, c.edit)
			if _, err := k.Get("alice"); !errors.Is(err, c.want) {
				t.Fatalf("Get after tampering: %v, want %v", err, c.want)
			}
		})
	}
	t.Run("not json", func(t *testing.T) {
		dir := t.TempDir()
		k := open(t, dir, Test, "")
		if _, err := k.Add("good", crypto.Ed25519); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bad.key"), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := k.Info("bad")
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "plug keys delete bad --yes") {
			t.Fatalf("Info of a bad file: %v", err)
		}
		infos, err := k.List()
		if !errors.Is(err, ErrCorrupt) || len(infos) != 1 || infos[0].Name != "good" {
			t.Fatalf("List = %v, %v", infos, err)
		}
		if err := k.Delete("bad"); err != nil {
			t.Fatal(err)
		}
	})
}

// nil2zero is a deterministic (all-zero) randomness source for tests.
type nil2zero struct{}

func (nil2zero) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestPermissions(t *testing.T) {
	for _, b := range []Backend{File, Test} {
		dir := filepath.Join(t.TempDir(), "a", "keys")
		k := open(t, dir, b, "correct horse")
		info, err := k.Add("alice", crypto.P256)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("dir mode %o, want 700", st.Mode().Perm())
		}
		st, err = os.Stat(info.Path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("file mode %o, want 600", st.Mode().Perm())
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("directory holds %d entries, want only alice.key", len(ents))
		}
	}
	// An existing directory open to others is restricted.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	open(t, dir, Test, "")
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("existing dir mode %o, want 700", st.Mode().Perm())
	}
}

func TestNames(t *testing.T) {
	good := []string{"a", "alice", "Bob_2", "v-1.key", "x.y", strings.Repeat("z", 64)}
	bad := []string{"", ".", "..", ".hidden", "-flag", "a/b", "../x", "a b", "é", "a\x00", strings.Repeat("z", 65)}
	for _, n := range good {
		if err := CheckName(n); err != nil {
			t.Errorf("CheckName(%q) = %v", n, err)
		}
	}
	k := open(t, t.TempDir(), Test, "")
	for _, n := range bad {
		if err := CheckName(n); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v", n, err)
		}
		if _, err := k.Add(n, crypto.Ed25519); !errors.Is(err, ErrBadName) {
			t.Errorf("Add(%q) = %v", n, err)
		}
		if _, err := k.Get(n); !errors.Is(err, ErrBadName) {
			t.Errorf("Get(%q) = %v", n, err)
		}
		if err := k.Delete(n); !errors.Is(err, ErrBadName) {
			t.Errorf("Delete(%q) = %v", n, err)
		}
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, Test, "")
	if _, err := k.Add("alice", crypto.Ed25519); err != nil {
		t.Fatal(err)
	}
	_, err := k.Add("alice", crypto.P256)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "plug keys delete alice --yes") {
		t.Fatalf("duplicate Add: %v", err)
	}
	_, err = k.Get("bob")
	want := fmt.Sprintf("key \"bob\" not found in %s: list keys with `plug keys list`", k.Dir())
	if !errors.Is(err, ErrNotFound) || err.Error() != want {
		t.Fatalf("Get(bob) = %v\nwant %s", err, want)
	}
	if _, err := k.Add("carol", "rsa"); !errors.Is(err, ErrUnknownScheme) {
		t.Fatalf("unknown scheme: %v", err)
	}
	if _, err := k.Import("carol", crypto.Ed25519, []byte{1, 2, 3}); err == nil {
		t.Fatal("import of a short secret succeeded")
	}
	// A file key is not used by a test keyring, and the other way round.
	fk := open(t, dir, File, "correct horse")
	if _, err := fk.Add("enc", crypto.Ed25519); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Get("enc"); !errors.Is(err, ErrBackendMismatch) {
		t.Fatalf("test keyring Get(file key) = %v", err)
	}
	if _, err := fk.Get("alice"); !errors.Is(err, ErrBackendMismatch) || !strings.Contains(err.Error(), "--keyring-backend test") {
		t.Fatalf("file keyring Get(test key) = %v", err)
	}
	if _, err := Open(dir, "plain", nil); err == nil {
		t.Fatal("Open with unknown backend succeeded")
	}
	if _, err := Open(dir, File, nil, WithKDF(KDFParams{Algorithm: "md5"})); err == nil {
		t.Fatal("Open with a bad KDF succeeded")
	}
}

func TestListResolve(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, Test, "")
	infos, err := k.List()
	if err != nil || infos == nil || len(infos) != 0 {
		t.Fatalf("empty List = %#v, %v", infos, err)
	}
	names := []string{"zed", "alice", "Bob", "mid.1"}
	byName := map[string]Info{}
	for i, n := range names {
		s := crypto.Ed25519
		if i%2 == 1 {
			s = crypto.P256
		}
		in, err := k.Add(n, s)
		if err != nil {
			t.Fatal(err)
		}
		byName[n] = in
	}
	// Stray files are ignored.
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, ".tmp-1.key.new"), []byte("x"), 0o600)
	infos, err = k.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range infos {
		got = append(got, in.Name)
	}
	if strings.Join(got, ",") != "Bob,alice,mid.1,zed" {
		t.Fatalf("List order = %v", got)
	}
	for n, in := range byName {
		for _, q := range []string{n, in.Address.String(), "0x" + in.Address.String(), strings.ToUpper(in.Address.String())} {
			r, err := k.Resolve(q)
			if err != nil || r.Name != n {
				t.Errorf("Resolve(%q) = %v, %v; want %s", q, r.Name, err, n)
			}
		}
	}
	if _, err := k.Resolve(strings.Repeat("ab", 20)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(unknown address) = %v", err)
	}
	if _, err := k.Resolve("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(unknown name) = %v", err)
	}
	if _, err := k.Resolve("a/b"); !errors.Is(err, ErrBadName) {
		t.Errorf("Resolve(bad) = %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, File, "correct horse")
	const n = 8
	var wg sync.WaitGroup
	wins := make(chan string, 4*n)
	for i := range 4 * n {
		wg.Go(func() {
			name := fmt.Sprintf("k%d", i%n) // each name raced by four goroutines
			if _, err := k.Add(name, crypto.Ed25519); err == nil {
				wins <- name
			} else if !errors.Is(err, ErrExists) {
				t.Error(err)
			}
			if _, err := k.Get(name); err != nil && !errors.Is(err, ErrNotFound) {
				t.Error(err)
			}
			k.List()
		})
	}
	wg.Wait()
	close(wins)
	seen := map[string]bool{}
	for w := range wins {
		if seen[w] {
			t.Errorf("name %s added twice", w)
		}
		seen[w] = true
	}
	infos, err := k.List()
	if err != nil || len(infos) != n || len(seen) != n {
		t.Fatalf("List: %d keys, %d wins, err %v", len(infos), len(seen), err)
	}
	// Two keyrings on one directory (as two processes would be) race safely.
	k2 := open(t, dir, File, "correct horse")
	var wins2 int
	var mu sync.Mutex
	for _, kk := range []*Keyring{k, k2, k, k2} {
		wg.Go(func() {
			if _, err := kk.Add("shared", crypto.P256); err == nil {
				mu.Lock()
				wins2++
				mu.Unlock()
			} else if !errors.Is(err, ErrExists) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins2 != 1 {
		t.Fatalf("%d keyrings added the same name", wins2)
	}
}
