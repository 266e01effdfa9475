package genesis

import (
	"errors"
	"testing"

	"github.com/plugchain/plug/chain/builtin"
)

// FuzzParse checks that no input makes Parse, Validate, Changes or Hash panic,
// that every error is located, and that a valid document yields state changes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(vars.Replace(example)))
	reg, ms := builtin.Registry(), builtin.Models()
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.json", data)
		if err != nil {
			var l ErrorList
			if !errors.As(err, &l) || len(l) == 0 {
				t.Fatalf("Parse error %T %v", err, err)
			}
			for _, e := range l {
				if e.Line < 1 || e.Column < 1 || e.File != "f.json" {
					t.Fatalf("unlocated error %v", e)
				}
			}
			return
		}
		_ = d.Hash()
		_ = d.Time()
		if err := d.Validate(reg); err != nil {
			for _, e := range err.(ErrorList) {
				if e.Line < 1 || e.Column < 1 {
					t.Fatalf("unlocated error %v", e)
				}
			}
			return
		}
		if _, err := d.Changes(ms); err != nil {
			t.Fatalf("Changes of a valid doc: %v", err)
		}
	})
}
