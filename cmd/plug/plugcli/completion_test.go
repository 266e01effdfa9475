package plugcli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var out, errb bytes.Buffer
		if code := run([]string{"plug", "completion", shell}, &out, &errb); code != 0 {
			t.Fatalf("plug completion %s: exit %d: %s", shell, code, errb.String())
		}
		s := out.String()
		if s == "" || !strings.Contains(s, "plug") {
			t.Fatalf("plug completion %s: %q", shell, s)
		}
		switch shell {
		case "fish":
			// fish lists the commands themselves.
			for _, cmd := range []string{"keys", "tx", "transfer", "query q", "balance", "completion"} {
				if !strings.Contains(s, "-a '"+cmd+"'") {
					t.Errorf("fish script does not complete %q", cmd)
				}
			}
		default:
			// bash and zsh ask plug for the subcommands.
			if !strings.Contains(s, "--generate-bash-completion") {
				t.Errorf("%s script does not ask plug for candidates", shell)
			}
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"plug", "completion", "tcsh"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "bash, zsh and fish") {
		t.Errorf("unknown shell: exit %d, %q", code, errb.String())
	}
}

// TestCompletionCandidates: what the bash and zsh scripts ask plug for lists
// the subcommands and flags. It runs the binary: urfave/cli reads the
// arguments of a completion request from os.Args.
func TestCompletionCandidates(t *testing.T) {
	for args, want := range map[string][]string{
		"plug --generate-bash-completion":                   {"keys", "tx", "query", "completion", "version"},
		"plug tx --generate-bash-completion":                {"transfer", "issue", "burn"},
		"plug query --generate-bash-completion":             {"balance", "supply"},
		"plug tx transfer --generate-bash-completion":       nil, // a leaf: runs no action
		"plug keys show alice - --generate-bash-completion": nil,
		"plug tx transfer --a --generate-bash-completion":   {"--asset", "--amount"},
	} {
		r := plug(t, nil, strings.Fields(args)[1:]...)
		if r.code != 0 {
			t.Errorf("%s: exit %d: %s", args, r.code, r.stderr)
			continue
		}
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: no %q in\n%s", args, w, r.stdout)
			}
		}
	}
}

// TestCompletionBashSyntax: the bash script parses (bash -n), and sourcing it
// registers the completion for plug.
func TestCompletionBashSyntax(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	f := filepath.Join(t.TempDir(), "plug.bash")
	if err := os.WriteFile(f, []byte(bashCompletion), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", f).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	out, err := exec.Command(bash, "-c", "source "+f+" && complete -p plug").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "_plug_bash_autocomplete") {
		t.Fatalf("sourcing the script: %v\n%s", err, out)
	}
}
