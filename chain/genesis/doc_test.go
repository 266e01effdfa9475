package genesis

import (
	"os"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/builtin"
)

// docExample returns the first JSON example of docs/genesis.md.
func docExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/genesis.md")
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	_, after, ok := strings.Cut(string(b), "```json\n")
	text, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("no ```json block in docs/genesis.md")
	}
	return text
}

func TestDocExample(t *testing.T) {
	d, err := Parse("genesis.json", []byte(docExample(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(builtin.Registry()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Changes(builtin.Models()); err != nil {
		t.Fatal(err)
	}
}
