package plugcli

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionFrom(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.6",
		Main:      debug.Module{Path: "github.com/plugchain/plug", Version: "v0.0.0-20261204150741-b2967817f86e+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "b2967817f86e621f5aa29190a8d04ad047f208e8"},
			{Key: "vcs.time", Value: "2026-12-04T15:07:41Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	v := versionFrom(bi, "")
	want := versionInfo{Version: "v0.0.0-20261204150741-b2967817f86e+dirty", Module: "github.com/plugchain/plug",
		Commit: "b2967817f86e621f5aa29190a8d04ad047f208e8", CommitTime: "2026-12-04T15:07:41Z", Modified: true,
		Go: "go1.26.6", Platform: "linux/arm64"}
	if v != want {
		t.Fatalf("versionFrom = %+v\nwant %+v", v, want)
	}
	text := fieldsText(v.fields())
	for _, s := range []string{"version: v0.0.0-20261204150741-b2967817f86e+dirty", "commit: b2967817f86e621f5aa29190a8d04ad047f208e8 (modified",
		"committed: 2026-12-04T15:07:41Z", "go: go1.26.6", "platform: linux/arm64"} {
		if !strings.Contains(text, s) {
			t.Errorf("text lacks %q:\n%s", s, text)
		}
	}

	if v := versionFrom(bi, "v1.2.3"); v.Version != "v1.2.3" || v.Commit == "" {
		t.Errorf("-ldflags version not preferred: %+v", v)
	}
	// go build without VCS information, or go run: no commit, version dev.
	bare := &debug.BuildInfo{GoVersion: "go1.26.6", Main: debug.Module{Path: "github.com/plugchain/plug", Version: "(devel)"}}
	v = versionFrom(bare, "")
	if v.Version != "dev" || v.Commit != "" || v.Modified {
		t.Errorf("bare build: %+v", v)
	}
	if text := fieldsText(v.fields()); !strings.Contains(text, "commit: unknown") || strings.Contains(text, "committed") {
		t.Errorf("bare build text:\n%s", text)
	}
	if v := versionFrom(nil, ""); v.Version != "dev" || v.Go == "" || v.Platform == "" {
		t.Errorf("no build info: %+v", v)
	}
}

// fieldsText joins fields as "name: value" lines, single-spaced.
func fieldsText(f [][2]string) string {
	var b strings.Builder
	for _, p := range f {
		b.WriteString(p[0] + ": " + p[1] + "\n")
	}
	return b.String()
}

// TestVersionBinary: the built plug reports exactly the build information its
// binary carries (the commit whenever go build stamped one).
func TestVersionBinary(t *testing.T) {
	bi, err := buildinfo.ReadFile(plugBin)
	if err != nil {
		t.Fatal(err)
	}
	want := versionFrom(bi, "")
	var got versionInfo
	ok(t, &got, nil, "version", "--output", "json")
	want.Platform, got.Platform = "", "" // the binary's own GOOS/GOARCH: same machine
	if got != want {
		t.Fatalf("plug version = %+v\nbinary carries %+v", got, want)
	}
	if setting(bi, "vcs.revision") != "" && got.Commit == "" {
		t.Fatalf("binary has vcs.revision %s, plug version shows none", setting(bi, "vcs.revision"))
	}
	r := ok(t, nil, nil, "version")
	if !strings.Contains(r.stdout, "version:") || !strings.Contains(r.stdout, "commit:") || !strings.Contains(r.stdout, "go:") {
		t.Fatalf("plug version:\n%s", r.stdout)
	}
	// plug --version agrees.
	r = ok(t, nil, nil, "--version")
	if !strings.Contains(r.stdout, got.Version) {
		t.Fatalf("plug --version = %q, want %s", r.stdout, got.Version)
	}
	var raw map[string]any
	if err := json.NewDecoder(bytes.NewBufferString(ok(t, nil, nil, "version", "-o", "json").stdout)).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, has := raw["modified"]; !has {
		t.Fatalf("json lacks modified: %v", raw)
	}
}

// TestVersionVCS builds plug with VCS stamping in a git checkout and checks
// that plug version reports the checkout's HEAD. Go stamps nothing in a git
// worktree (.git a file) or without git, so the test skips there.
func TestVersionVCS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plug again")
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	root, err := exec.Command(gitBin, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	top := strings.TrimSpace(string(root))
	if st, err := os.Stat(filepath.Join(top, ".git")); err != nil || !st.IsDir() {
		t.Skip("a git worktree: go build stamps no VCS information there")
	}
	head, err := exec.Command(gitBin, "-C", top, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skip("no commit yet")
	}
	bin := filepath.Join(t.TempDir(), "plug")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "github.com/plugchain/plug/cmd/plug")
	build.Dir = top
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("go build -buildvcs=true: %v\n%s", err, out) // e.g. git refusing a checkout owned by another user
	}
	out, err := exec.Command(bin, "version", "--output", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v versionInfo
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if v.Commit != strings.TrimSpace(string(head)) || v.CommitTime == "" || !strings.HasPrefix(v.Version, "v") { // a tag, or a pseudo-version naming the commit
		t.Fatalf("plug version in a checkout at %s: %+v", head, v)
	}
	status, _ := exec.Command(gitBin, "-C", top, "status", "--porcelain", "--untracked-files=no").Output()
	if dirty := len(bytes.TrimSpace(status)) > 0; v.Modified != dirty {
		t.Fatalf("modified = %v, git status says dirty = %v", v.Modified, dirty)
	}
}
