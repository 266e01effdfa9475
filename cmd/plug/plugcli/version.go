package plugcli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version, when set at build time with
// -ldflags "-X github.com/plugchain/plug/cmd/plug/plugcli.version=v1.2.3",
// overrides the module version the Go toolchain records.
var version = ""

// versionInfo is what `plug version` reports.
type versionInfo struct {
	// Version is the release: the -ldflags version, else the module version Go
	// stamped (a tag, or a pseudo-version like v0.0.0-20261204150000-52a5b6a3b1c2+dirty),
	// else "dev".
	Version string `json:"version"`
	// Module is the main module's path.
	Module string `json:"module,omitempty"`
	// Commit is the VCS revision the binary was built from ("" when unknown:
	// built outside a checkout, or with -buildvcs=false).
	Commit string `json:"commit,omitempty"`
	// CommitTime is the commit's time (RFC 3339, UTC) as git records it: Go
	// stamps no build time, so this is when the source was committed.
	CommitTime string `json:"commit_time,omitempty"`
	// Modified reports that the checkout had uncommitted changes.
	Modified bool `json:"modified"`
	// Go is the toolchain that built the binary; Platform is GOOS/GOARCH.
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// buildVersion reads the running binary's build information.
func buildVersion() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(bi, version)
}

// versionFrom is the version information of a binary built as bi (nil when
// the binary carries none) and given override as -ldflags version.
func versionFrom(bi *debug.BuildInfo, override string) versionInfo {
	v := versionInfo{Version: override, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if v.Version == "" {
			v.Version = "dev"
		}
		return v
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	v.Module = bi.Main.Path
	if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if goos, goarch := setting(bi, "GOOS"), setting(bi, "GOARCH"); goos != "" && goarch != "" {
		v.Platform = goos + "/" + goarch
	}
	return v
}

func setting(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// fields is the text form of v.
func (v versionInfo) fields() [][2]string {
	commit := v.Commit
	switch {
	case commit == "":
		commit = "unknown (built outside a git checkout, in a git worktree, by go run, or with -buildvcs=false)"
	case v.Modified:
		commit += " (modified: built with uncommitted changes)"
	}
	out := [][2]string{{"version", v.Version}, {"commit", commit}}
	if v.CommitTime != "" {
		out = append(out, [2]string{"committed", v.CommitTime})
	}
	return append(out, [2]string{"go", v.Go}, [2]string{"platform", v.Platform})
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print the version, the commit it was built from, and the Go toolchain",
		UsageText: "plug version\nplug version --output json",
		Description: "The version is the module version Go records at build time (a tag, or a pseudo-version\n" +
			"naming the commit), or the one given with -ldflags \"-X github.com/plugchain/plug/cmd/plug/plugcli.version=V\".\n" +
			"The commit, its time and whether the checkout had uncommitted changes come from the VCS\n" +
			"information `go build` stamps into binaries built inside a git checkout (runtime/debug.ReadBuildInfo).",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q: see `plug version --help`", c.Args().First())
			}
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			v := buildVersion()
			return o.Emit(v, func(w io.Writer) error { return o.Fields(v.fields()) })
		},
	}
}
