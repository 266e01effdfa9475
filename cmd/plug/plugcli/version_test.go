package plugcli

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
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
