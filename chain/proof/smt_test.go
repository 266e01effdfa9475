package proof_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// smtTree is a three-key tree built by hand from the hashing rule:
//
//	root = Node(leaf(a), Node(0, Node(leaf(b), leaf(c))))
//
// a's path starts with 0; b and c start with 10, then differ at bit 2 (b: 100,
// c: 101). The empty sibling at depth 1 exercises the presence bitmap. absentLeaf
// starts with 0 (its proof ends on a's leaf); absentEmpty starts with 11 (its proof
// ends on the empty subtree).
type smtTree struct {
	a, b, c, absentLeaf, absentEmpty string
	va, vb, vc                       []byte
	la, lb, lc, bc, right, root      hash.Hash
}

func smtFind(prefix string, skip ...string) string {
	for i := 0; ; i++ {
		k := "k" + strconv.Itoa(i)
		p := proof.KeyPath(k)
		ok := true
		for j := range prefix {
			if p.Bit(j) != int(prefix[j]-'0') {
				ok = false
				break
			}
		}
		for _, s := range skip {
			ok = ok && k != s
		}
		if ok {
			return k
		}
	}
}

func newSMTTree() *smtTree {
	t := &smtTree{va: []byte("alpha"), vb: []byte("beta"), vc: []byte("gamma")}
	t.a = smtFind("0")
	t.b = smtFind("100")
	t.c = smtFind("101")
	t.absentLeaf = smtFind("0", t.a)
	t.absentEmpty = smtFind("11")
	leaf := func(k string, v []byte) hash.Hash { return proof.LeafHash(proof.KeyPath(k), proof.ValueHash(v)) }
	t.la, t.lb, t.lc = leaf(t.a, t.va), leaf(t.b, t.vb), leaf(t.c, t.vc)
	t.bc = proof.NodeHash(t.lb, t.lc)
	t.right = proof.NodeHash(t.bc, hash.Hash{})
	t.root = proof.NodeHash(t.la, t.right)
	return t
}

// proofs returns one valid proof per case, with what it proves.
func (t *smtTree) proofs() []smtCase {
	return []smtCase{
		{"member-a", t.a, t.va, true, proof.NewStateProof([]hash.Hash{t.right}, nil)},
		{"member-b", t.b, t.vb, true, proof.NewStateProof([]hash.Hash{t.la, {}, t.lc}, nil)},
		{"member-c", t.c, t.vc, true, proof.NewStateProof([]hash.Hash{t.la, {}, t.lb}, nil)},
		{"absent-leaf", t.absentLeaf, nil, false, proof.NewStateProof([]hash.Hash{t.right},
			&proof.StateLeaf{Path: proof.KeyPath(t.a), ValueHash: proof.ValueHash(t.va)})},
		{"absent-empty", t.absentEmpty, nil, false, proof.NewStateProof([]hash.Hash{t.la, t.bc}, nil)},
	}
}

type smtCase struct {
	name   string
	key    string
	value  []byte
	member bool
	proof  *proof.StateProof
}

func (c smtCase) verify(p *proof.StateProof, root hash.Hash) error {
	if c.member {
		return p.VerifyMembership(root, c.key, c.value)
	}
	return p.VerifyNonMembership(root, c.key)
}

func TestStateProofHandBuiltTree(t *testing.T) {
	tr := newSMTTree()
	for _, c := range tr.proofs() {
		if err := c.verify(c.proof, tr.root); err != nil {
			t.Errorf("%s: valid proof refused: %v", c.name, err)
		}
		// The opposite claim never verifies.
		if c.member {
			if err := c.proof.VerifyNonMembership(tr.root, c.key); err == nil {
				t.Errorf("%s: membership proof accepted as non-membership", c.name)
			}
		} else if err := c.proof.VerifyMembership(tr.root, c.key, []byte("x")); err == nil {
			t.Errorf("%s: non-membership proof accepted as membership", c.name)
		}
		bad := tr.root
		bad[31] ^= 1
		if err := c.verify(c.proof, bad); !errors.Is(err, proof.ErrProofMismatch) {
			t.Errorf("%s: wrong root: %v", c.name, err)
		}
	}
	// The empty tree proves every key absent with the empty proof.
	if err := proof.NewStateProof(nil, nil).VerifyNonMembership(hash.Hash{}, "anything"); err != nil {
		t.Errorf("empty tree: %v", err)
	}
	// A one-key tree is its leaf.
	one := proof.LeafHash(proof.KeyPath("solo"), proof.ValueHash([]byte("v")))
	if err := proof.NewStateProof(nil, nil).VerifyMembership(one, "solo", []byte("v")); err != nil {
		t.Errorf("one-key tree: %v", err)
	}
}

func TestStateProofMalformed(t *testing.T) {
	tr := newSMTTree()
	memberB := tr.proofs()[1]
	absent := tr.proofs()[3]
	cases := []struct {
		name string
		c    smtCase
		edit func(p *proof.StateProof)
	}{
		{"too deep", memberB, func(p *proof.StateProof) {
			p.Depth = proof.MaxDepth + 1
			p.Present = make([]byte, (proof.MaxDepth+8)/8)
		}},
		{"bitmap too short", memberB, func(p *proof.StateProof) { p.Present = nil }},
		{"bitmap too long", memberB, func(p *proof.StateProof) { p.Present = append(p.Present, 0) }},
		{"bit past depth", memberB, func(p *proof.StateProof) { p.Present[0] |= 1 }},
		{"sibling missing", memberB, func(p *proof.StateProof) { p.Siblings = p.Siblings[:1] }},
		{"sibling extra", memberB, func(p *proof.StateProof) { p.Siblings = append(p.Siblings, tr.la) }},
		{"empty sibling present", memberB, func(p *proof.StateProof) {
			p.Present[0] |= 0x40
			p.Siblings = []hash.Hash{tr.la, {}, tr.lc}
		}},
		{"membership with leaf", memberB, func(p *proof.StateProof) { p.Leaf = &proof.StateLeaf{} }},
		{"leaf is the key", absent, func(p *proof.StateProof) { p.Leaf.Path = proof.KeyPath(absent.key) }},
		{"leaf off path", absent, func(p *proof.StateProof) { p.Leaf.Path = proof.KeyPath(tr.b) }},
	}
	for _, tc := range cases {
		p := cloneStateProof(tc.c.proof)
		tc.edit(p)
		if err := tc.c.verify(p, tr.root); !errors.Is(err, proof.ErrProofMalformed) {
			t.Errorf("%s: got %v, want ErrProofMalformed", tc.name, err)
		}
	}
}

func cloneStateProof(p *proof.StateProof) *proof.StateProof {
	q := *p
	q.Present = append([]byte(nil), p.Present...)
	q.Siblings = append([]hash.Hash(nil), p.Siblings...)
	if p.Leaf != nil {
		l := *p.Leaf
		q.Leaf = &l
	}
	return &q
}

func TestStateProofCBORRoundTrip(t *testing.T) {
	tr := newSMTTree()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tr.proofs() {
		raw, err := em.Marshal(c.proof)
		if err != nil {
			t.Fatal(err)
		}
		var p proof.StateProof
		if err := cbor.Unmarshal(raw, &p); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := c.verify(&p, tr.root); err != nil {
			t.Errorf("%s: decoded proof refused: %v", c.name, err)
		}
		t.Logf("%s: %d siblings, %d CBOR bytes: %x", c.name, len(p.Siblings), len(raw), raw)
	}
}

// FuzzStateProofDecode decodes arbitrary bytes as a CBOR StateProof and runs both
// verifications against the hand-built tree. It must never panic, and nothing may
// verify that is false in that tree (soundness).
func FuzzStateProofDecode(f *testing.F) {
	tr := newSMTTree()
	for _, c := range tr.proofs() {
		raw, err := cbor.Marshal(c.proof)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, c.key, c.value)
	}
	truth := map[string][]byte{tr.a: tr.va, tr.b: tr.vb, tr.c: tr.vc}
	f.Fuzz(func(t *testing.T, data []byte, key string, value []byte) {
		var p proof.StateProof
		if err := cbor.Unmarshal(data, &p); err != nil {
			return
		}
		if err := p.VerifyMembership(tr.root, key, value); err == nil {
			if v, ok := truth[key]; !ok || string(v) != string(value) {
				t.Fatalf("forged membership of %q=%q accepted", key, value)
			}
		} else if !errors.Is(err, proof.ErrProofMalformed) && !errors.Is(err, proof.ErrProofMismatch) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if err := p.VerifyNonMembership(tr.root, key); err == nil {
			if _, ok := truth[key]; ok {
				t.Fatalf("forged non-membership of %q accepted", key)
			}
		} else if !errors.Is(err, proof.ErrProofMalformed) && !errors.Is(err, proof.ErrProofMismatch) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		// The zero root (empty tree) admits no member.
		if p.VerifyMembership(hash.Hash{}, key, value) == nil {
			t.Fatalf("membership in the empty tree accepted")
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzStateProofDecode when
// PLUG_WRITE_FUZZ_SEEDS=1; otherwise it checks the committed seeds still decode.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzStateProofDecode")
	tr := newSMTTree()
	if os.Getenv("PLUG_WRITE_FUZZ_SEEDS") != "1" {
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) == 0 {
			t.Fatalf("seed corpus missing: %v", err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, raw []byte, key string, value []byte) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nstring(%q)\n[]byte(%q)\n", raw, key, value)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range tr.proofs() {
		raw, err := cbor.Marshal(c.proof)
		if err != nil {
			t.Fatal(err)
		}
		write(c.name, raw, c.key, c.value)
	}
	deep := proof.NewStateProof(make([]hash.Hash, proof.MaxDepth), nil)
	raw, _ := cbor.Marshal(deep)
	write("max-depth-empty", raw, "k", nil)
	write("garbage", []byte{0xa4, 0x01, 0x19, 0xff, 0xff, 0x02, 0x40, 0x03, 0x80, 0x04, 0xf6}, "k", []byte("v"))
	write("empty", nil, "", nil)
}
