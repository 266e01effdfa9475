package plugcli

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	cases := []struct{ in, want []string }{
		{[]string{"plug", "keys", "add", "alice", "--scheme", "p256"}, []string{"plug", "keys", "add", "--scheme", "p256", "alice"}},
		{[]string{"plug", "-o", "json", "keys", "add", "alice", "--scheme=p256", "-o", "text"}, []string{"plug", "-o", "json", "keys", "add", "--scheme=p256", "-o", "text", "alice"}},
		{[]string{"plug", "keys", "delete", "bob", "--yes", "--home", "/h"}, []string{"plug", "keys", "delete", "--yes", "--home", "/h", "bob"}},
		{[]string{"plug", "keys", "add", "--", "-odd", "--scheme", "x"}, []string{"plug", "keys", "add", "--", "-odd", "--scheme", "x"}},
		{[]string{"plug", "keys", "add", "a", "--", "-b"}, []string{"plug", "keys", "add", "--", "a", "-b"}},
		{[]string{"plug", "keys", "bogus", "--x"}, []string{"plug", "keys", "bogus", "--x"}},
		{[]string{"plug", "keys"}, []string{"plug", "keys"}},
		{[]string{"plug"}, []string{"plug"}},
		{[]string{"plug", "keys", "show", "alice", "--home", "/h", "--generate-bash-completion"}, []string{"plug", "keys", "show", "--home", "/h", "alice", "--generate-bash-completion"}},
	}
	for _, c := range cases {
		if got := permuteArgs(app, c.in); !slices.Equal(got, c.want) {
			t.Errorf("permuteArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestJSONRequested(t *testing.T) {
	for args, want := range map[string]bool{
		"plug keys list --output json": true,
		"plug -o json keys list":       true,
		"plug keys list --output=json": true,
		"plug keys list -o=json":       true,
		"plug keys list":               false,
		"plug keys list --output text": false,
		"plug keys add -- -o json":     false,
		"plug keys show output json":   false,
	} {
		if got := jsonRequested(splitArgs(args)); got != want {
			t.Errorf("jsonRequested(%q) = %v", args, got)
		}
	}
}

func splitArgs(s string) []string { return strings.Fields(s) }
