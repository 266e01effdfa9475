package genesis

import (
	"strings"
	"testing"
)

func importDoc() *Doc {
	h := strings.Repeat("ab", 32)
	return &Doc{ChainID: "bank-a-2", GenesisTime: "2026-12-01T00:00:00Z",
		Validators:  []Validator{{Name: "val-1", PubKey: FromPublicKey(key1.Public()), Power: 10}},
		StateImport: &StateImport{File: "x.export", SHA256: h, ChainID: "bank-a", GenesisHash: h, Height: 7, StateRoot: h, HeaderHash: h}}
}

// TestImportRules: what a document that imports a state may and must hold.
func TestImportRules(t *testing.T) {
	if err := importDoc().Validate(nil); err != nil {
		t.Fatalf("a valid importing document: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(d *Doc)
		want string
	}{
		"roles":         {func(d *Doc) { d.Roles = []Role{{Name: "x", Transforms: []string{"a"}}} }, "roles: must be empty with state_import"},
		"assets":        {func(d *Doc) { d.Assets = []Asset{{Name: "X", Issuer: "x"}} }, "assets: must be empty"},
		"staking asset": {func(d *Doc) { d.StakingAsset = "STAKE" }, "staking_asset: must be empty"},
		"same chain id": {func(d *Doc) { d.StateImport.ChainID = d.ChainID }, "chain_id: must differ from the imported chain's id"},
		"no file":       {func(d *Doc) { d.StateImport.File = "" }, "state_import.file: missing"},
		"bad sha256":    {func(d *Doc) { d.StateImport.SHA256 = "xyz" }, "state_import.sha256: want 64 hex digits"},
		"short root":    {func(d *Doc) { d.StateImport.StateRoot = "abcd" }, "state_import.state_root: want 64 hex digits"},
		"height 0":      {func(d *Doc) { d.StateImport.Height = 0 }, "state_import.height: must be a committed height"},
		"no validators": {func(d *Doc) { d.Validators = nil }, "validators: at least one validator"},
		"bad old chain": {func(d *Doc) { d.StateImport.ChainID = "Bank A" }, "state_import.chain_id: must be 1-64"},
	} {
		t.Run(name, func(t *testing.T) {
			d := importDoc()
			tc.edit(d)
			err := d.Validate(nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestImportHash: the import enters the hash, its file name does not, and a
// document without one hashes as before.
func TestImportHash(t *testing.T) {
	a, b := importDoc(), importDoc()
	b.StateImport.File = "elsewhere/x.export"
	if a.Hash() != b.Hash() {
		t.Fatal("the file name changed the hash")
	}
	b.StateImport.SHA256 = strings.Repeat("cd", 32)
	if a.Hash() == b.Hash() {
		t.Fatal("another export file hashes alike")
	}
	b = importDoc()
	b.StateImport.SHA256 = strings.ToUpper(b.StateImport.SHA256)
	if a.Hash() != b.Hash() {
		t.Fatal("hex case changed the hash")
	}
	c := importDoc()
	c.StateImport = nil
	if c.Hash() == a.Hash() {
		t.Fatal("the import is not in the hash")
	}
	// A round trip through JSON keeps it.
	data, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("g.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Hash() != a.Hash() || p.StateImport == nil || p.StateImport.Height != 7 {
		t.Fatalf("round trip: %+v", p.StateImport)
	}
	if got := p.ImportPath(); got != "x.export" {
		t.Fatalf("ImportPath of g.json's import: %q", got)
	}
}
