package exec_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
)

// Attest records that its signer vouches for a document, once per document. It is
// the worked example of docs/transforms.md: a plain struct, no encoding code.
type Attest struct {
	Document string `cbor:"1,keyasint" json:"document"` // e.g. the hex SHA-256 of a PDF
	Note     string `cbor:"2,keyasint" json:"note"`
}

// Attestation is the value the "attestation" model stores.
type Attestation struct {
	By     crypto.Address `cbor:"1,keyasint"`
	Height uint64         `cbor:"2,keyasint"`
	Note   string         `cbor:"3,keyasint"`
}

func attestKey(doc string) string { return "attest/" + doc }

// Keys declares the one key the transform touches, from its fields alone.
func (a *Attest) Keys(*transform.Context) (reads, writes []string) {
	return nil, []string{attestKey(a.Document)}
}

// Authorizations: nobody beyond the signer; RBAC decides who may attest at all.
func (a *Attest) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify refuses empty documents and second attestations.
func (a *Attest) Verify(_ *transform.Context, st transform.State) error {
	if len(a.Document) != 64 {
		return fmt.Errorf("%w: document must be 64 hex digits", transform.ErrInvalid)
	}
	var prev Attestation
	found, err := st.Get(attestKey(a.Document), &prev)
	if err != nil {
		return err
	}
	if found {
		return fmt.Errorf("%w: already attested by %s at height %d", transform.ErrInvalid, prev.By, prev.Height)
	}
	return nil
}

// Apply stores the attestation.
func (a *Attest) Apply(ctx *transform.Context, st transform.State) error {
	return st.Set(attestKey(a.Document), Attestation{By: ctx.Signers[0], Height: ctx.Height, Note: a.Note})
}

func Example_userTransform() {
	// 1. Register the transform and its model next to the built-ins.
	reg, models := builtin.Registry(), builtin.Models()
	reg.MustRegister("notary/attest", &Attest{})
	models.MustAdd(transform.Model{Name: "attestation", Prefix: "attest/",
		Validate: func(v any) error {
			if a, ok := v.(Attestation); !ok || len(a.Note) > 280 {
				return fmt.Errorf("want an Attestation with a note of at most 280 bytes")
			}
			return nil
		}})
	ex := exec.New(reg, models)

	// 2. A state whose RBAC lets a "notary" role call it (normally: the genesis file).
	notary, _ := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(make([]byte, 32)))
	st := memState{}
	st[rbac.RolesKey] = encoding.MustMarshal([]string{"notary"})
	st[rbac.RoleKey("notary")] = encoding.MustMarshal(rbac.Role{Transforms: []string{"notary/attest"}})
	st[rbac.MemberKey("notary", notary.Public().Address())] = encoding.MustMarshal(true)

	// 3. Sign and execute two attestations of the same document.
	doc := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	var txs []*tx.Tx
	for nonce := uint64(0); nonce < 2; nonce++ {
		t, _ := tx.New(reg, "example", &Attest{Document: doc, Note: "signed original"},
			tx.Signer{Key: notary.Public(), Nonce: nonce})
		_ = t.Sign(notary)
		txs = append(txs, t)
	}
	res, err := ex.Execute(st, exec.Env{ChainID: "example", Height: 7}, txs, nil)
	if err != nil {
		panic(err)
	}
	for _, r := range res.Receipts {
		fmt.Println(strings.TrimSpace(r.Code.String() + " " + r.Error))
	}
	var got Attestation
	_, _ = res.Get(attestKey(doc), &got)
	fmt.Println("attested at height", got.Height, "note:", got.Note)
	// Output:
	// ok
	// failed verify notary/attest: invalid transform: already attested by a5dc7ae6445292588efa0f423ecc5df5f2332bfb at height 7
	// attested at height 7 note: signed original
}
