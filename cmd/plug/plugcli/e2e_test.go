package plugcli

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
)

// plugBin is the plug binary built by TestMain.
var plugBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plug-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugBin = filepath.Join(dir, "plug")
	build := exec.Command("go", "build", "-o", plugBin, "github.com/plugchain/plug/cmd/plug")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building plug:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished plug process.
type result struct {
	code           int
	stdout, stderr string
}

// plug runs the binary with args and extra environment (HOME and PLUG_* are
// cleared first so the user's own settings never leak in).
func plug(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(plugBin, args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PLUG_") && !strings.HasPrefix(e, "HOME=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running plug %v: %v", args, err)
	}
	return r
}

// ok runs plug, requires exit code 0 and decodes the JSON on stdout into v
// (if v is not nil).
func ok(t *testing.T, v any, env []string, args ...string) result {
	t.Helper()
	r := plug(t, env, args...)
	if r.code != 0 {
		t.Fatalf("plug %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			t.Fatalf("plug %s: stdout is not one JSON document: %v\n%s", strings.Join(args, " "), err, r.stdout)
		}
	}
	return r
}

// fails runs plug, requires exit code 1, a "plug: " message on stderr
// containing want and, for --output json, {"error": ...} on stdout.
func fails(t *testing.T, want string, env []string, args ...string) result {
	t.Helper()
	r := plug(t, env, args...)
	if r.code != 1 {
		t.Fatalf("plug %s: exit %d, want 1\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	last := strings.TrimSpace(r.stderr)
	if i := strings.LastIndex(last, "\n"); i >= 0 {
		last = last[i+1:]
	}
	if !strings.HasPrefix(last, "plug: ") || !strings.Contains(last, want) {
		t.Fatalf("plug %s: stderr %q, want \"plug: ...%s...\"", strings.Join(args, " "), r.stderr, want)
	}
	if slices.Contains(args, "json") {
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || !strings.Contains(e.Error, want) {
			t.Fatalf("plug %s: stdout %q, want {\"error\": ...%s...}", strings.Join(args, " "), r.stdout, want)
		}
	}
	return r
}

type keyOut struct {
	Name       string `json:"name"`
	Address    string `json:"address"`
	Scheme     string `json:"scheme"`
	PublicKey  string `json:"public_key"`
	Backend    string `json:"backend"`
	Encrypted  bool   `json:"encrypted"`
	File       string `json:"file"`
	PrivateKey string `json:"private_key"`
}

func TestKeysE2E(t *testing.T) {
	for _, backend := range []string{"test", "file"} {
		t.Run(backend, func(t *testing.T) {
			home := t.TempDir()
			env := []string{"PLUG_HOME=" + home}
			if backend == "file" {
				env = append(env, "PLUG_PASSPHRASE=correct horse battery")
			}
			kb := []string{"--keyring-backend", backend, "--output", "json"}
			run := func(v any, args ...string) result { return ok(t, v, env, append(args, kb...)...) }

			var alice, bob keyOut
			r := run(&alice, "keys", "add", "alice")
			if alice.Name != "alice" || alice.Scheme != "ed25519" || alice.Backend != backend || len(alice.Address) != 40 {
				t.Fatalf("add alice: %+v", alice)
			}
			if alice.File != filepath.Join(home, "keys", "alice.key") {
				t.Fatalf("key file %s, want under PLUG_HOME", alice.File)
			}
			if warned := strings.Contains(r.stderr, "UNENCRYPTED"); warned != (backend == "test") {
				t.Fatalf("backend %s: warning on stderr = %v: %q", backend, warned, r.stderr)
			}
			// Flags before the name work as well as after.
			run(&bob, "keys", "add", "--scheme", "p256", "bob")
			if bob.Scheme != "p256" {
				t.Fatalf("add bob: %+v", bob)
			}

			var list []keyOut
			run(&list, "keys", "list")
			if len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" || list[1].Address != bob.Address {
				t.Fatalf("list: %+v", list)
			}

			// show by name and by address; no passphrase needed.
			var shown keyOut
			ok(t, &shown, []string{"PLUG_HOME=" + home}, "--output", "json", "keys", "show", "bob", "--keyring-backend", backend)
			if shown.Address != bob.Address || shown.PublicKey != bob.PublicKey {
				t.Fatalf("show bob: %+v, want %+v", shown, bob)
			}
			run(&shown, "keys", "show", alice.Address)
			if shown.Name != "alice" {
				t.Fatalf("show by address: %+v", shown)
			}

			// export gives a secret whose public key is the stored one.
			fails(t, "--unsafe-export-private-key", env, append([]string{"keys", "export", "alice"}, kb...)...)
			var exp keyOut
			run(&exp, "keys", "export", "alice", "--unsafe-export-private-key")
			secret, err := hex.DecodeString(exp.PrivateKey)
			if err != nil {
				t.Fatalf("export: %+v", exp)
			}
			priv, err := crypto.PrivateKeyFromBytes(crypto.Ed25519, secret)
			if err != nil {
				t.Fatal(err)
			}
			if got := priv.Public().Address().String(); got != alice.Address {
				t.Fatalf("exported key has address %s, want %s", got, alice.Address)
			}
			// Text export prints just the hex secret.
			tr := ok(t, nil, env, "keys", "export", "alice", "--unsafe-export-private-key", "--keyring-backend", backend)
			if strings.TrimSpace(tr.stdout) != exp.PrivateKey {
				t.Fatalf("text export %q, want %q", tr.stdout, exp.PrivateKey)
			}

			// import into a second keyring from a file.
			secretFile := filepath.Join(t.TempDir(), "alice.hex")
			os.WriteFile(secretFile, []byte(exp.PrivateKey+"\n"), 0o600)
			var imp keyOut
			run(&imp, "keys", "import", "alice", "--file", secretFile, "--keyring-dir", filepath.Join(home, "other"))
			if imp.Address != alice.Address {
				t.Fatalf("import: %+v", imp)
			}

			// Errors.
			fails(t, `key "alice" already exists`, env, append([]string{"keys", "add", "alice"}, kb...)...)
			fails(t, `key "carol" not found in `+filepath.Join(home, "keys")+": list keys with `plug keys list`",
				env, append([]string{"keys", "show", "carol"}, kb...)...)
			fails(t, "bad key name", env, append([]string{"keys", "add", "a/b"}, kb...)...)
			fails(t, "unknown signature scheme", env, append([]string{"keys", "add", "dave", "--scheme", "rsa"}, kb...)...)
			fails(t, "without --yes", env, append([]string{"keys", "delete", "bob"}, kb...)...)

			// delete.
			var del map[string]string
			run(&del, "keys", "delete", "bob", "--yes")
			if del["deleted"] != "bob" || del["address"] != bob.Address {
				t.Fatalf("delete: %v", del)
			}
			run(&list, "keys", "list")
			if len(list) != 1 || list[0].Name != "alice" {
				t.Fatalf("list after delete: %+v", list)
			}
			fails(t, `key "bob" not found`, env, append([]string{"keys", "delete", "bob", "--yes"}, kb...)...)

			// Text mode prints an aligned table.
			tr = ok(t, nil, env, "keys", "list", "--keyring-backend", backend)
			if !strings.HasPrefix(tr.stdout, "NAME ") || !strings.Contains(tr.stdout, alice.Address) {
				t.Fatalf("text list:\n%s", tr.stdout)
			}
		})
	}
}

func TestKeysE2EPassphrase(t *testing.T) {
	home := t.TempDir()
	good := []string{"PLUG_HOME=" + home, "PLUG_PASSPHRASE=correct horse battery"}
	ok(t, nil, good, "keys", "add", "alice")

	// Wrong passphrase: exit 1, a message naming the key and the cause.
	bad := []string{"PLUG_HOME=" + home, "PLUG_PASSPHRASE=wrong horse battery"}
	fails(t, `cannot decrypt key "alice": wrong passphrase`, bad,
		"keys", "export", "alice", "--unsafe-export-private-key", "--output", "json")

	// No passphrase and no terminal: say how to give one.
	r := fails(t, "PLUG_PASSPHRASE", []string{"PLUG_HOME=" + home}, "keys", "export", "alice", "--unsafe-export-private-key")
	if !strings.Contains(r.stderr, "--passphrase-file") {
		t.Fatalf("no hint about --passphrase-file: %q", r.stderr)
	}
	// Listing and showing need no passphrase.
	ok(t, nil, []string{"PLUG_HOME=" + home}, "keys", "list")
	ok(t, nil, []string{"PLUG_HOME=" + home}, "keys", "show", "alice")

	// --passphrase-file works and wins over the environment.
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte("correct horse battery\n"), 0o600)
	ok(t, nil, bad, "keys", "export", "alice", "--unsafe-export-private-key", "--passphrase-file", pf)

	// Short passphrases are refused for new keys.
	fails(t, "too short", []string{"PLUG_HOME=" + home, "PLUG_PASSPHRASE=short"}, "keys", "add", "bob")

	// The test backend refuses to use an encrypted key, and says how.
	fails(t, "--keyring-backend file", good, "keys", "export", "alice", "--unsafe-export-private-key", "--keyring-backend", "test")

	// Tampered ciphertext is detected.
	path := filepath.Join(home, "keys", "alice.key")
	data, _ := os.ReadFile(path)
	var m map[string]any
	json.Unmarshal(data, &m)
	ct := []byte(m["ciphertext"].(string))
	if ct[0] == '0' {
		ct[0] = '1'
	} else {
		ct[0] = '0'
	}
	m["ciphertext"] = string(ct)
	data, _ = json.Marshal(m)
	os.WriteFile(path, data, 0o600)
	fails(t, "was altered", good, "keys", "export", "alice", "--unsafe-export-private-key")
}

func TestCLIErrors(t *testing.T) {
	env := []string{"PLUG_HOME=" + t.TempDir()}
	fails(t, "unknown command \"bogus\"", env, "bogus")
	fails(t, "unknown command \"bogus\"", env, "--output", "json", "keys", "bogus")
	fails(t, "missing NAME", env, "keys", "add", "--keyring-backend", "test")
	fails(t, "flag provided but not defined", env, "keys", "list", "--bogus")
	fails(t, "unknown output format", env, "keys", "list", "--output", "yaml")
	fails(t, "unknown keyring backend", env, "keys", "list", "--keyring-backend", "plain")
	for _, args := range [][]string{
		{"--help"}, {"keys", "--help"}, {"keys", "add", "--help"}, {"keys", "list", "--help"},
		{"keys", "show", "--help"}, {"keys", "import", "--help"}, {"keys", "export", "--help"}, {"keys", "delete", "--help"},
	} {
		r := ok(t, nil, env, args...)
		if !strings.Contains(r.stdout, "USAGE:") || !strings.Contains(r.stdout, "plug") {
			t.Errorf("plug %v: no usage:\n%s", args, r.stdout)
		}
	}
	var v map[string]any
	ok(t, &v, env, "version", "-o", "json")
	if v["version"] == "" || v["version"] == nil {
		t.Fatalf("version: %v", v)
	}
}
