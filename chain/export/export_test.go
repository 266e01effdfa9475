package export_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/export"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/store"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
)

func seedKey(t *testing.T, b byte) crypto.PrivateKey {
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(bytes.Repeat([]byte{b}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// chainAt runs a one-validator chain in home that makes transfers to bob, stops
// it, and returns a height H at which bob's balance was atH, with transfers
// committed after H (so the export reads an old version).
func chainAt(t *testing.T, home string) (gen *genesis.Doc, h uint64, bob crypto.Address, atH uint64) {
	admin, val := seedKey(t, 200), seedKey(t, 1)
	bob = seedKey(t, 99).Public().Address()
	gen = genesis.Default("old-chain", []crypto.PublicKey{val.Public()}, admin.Public().Address())
	n, err := node.New(node.Config{Name: "val-1", Home: home, Genesis: gen, Key: val, Validator: true,
		P2PListen: "/ip4/127.0.0.1/tcp/0", Registry: builtin.Registry(), Models: builtin.Models()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	send := func(nonce, amount uint64) {
		x, err := tx.New(builtin.Registry(), gen.ChainID, &asset.Transfer{Asset: "STAKE", From: admin.Public().Address(), To: bob, Amount: amount},
			tx.Signer{Key: admin.Public(), Nonce: nonce})
		if err == nil {
			err = x.Sign(admin)
		}
		if err != nil {
			t.Fatal(err)
		}
		id, err := n.Submit(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			r, err := n.TxResult(context.Background(), id)
			if err == nil {
				if r.Code != exec.OK {
					t.Fatalf("transfer: %v %s", r.Code, r.Error)
				}
				return
			}
			if time.Now().After(end) {
				t.Fatalf("transfer not committed: %v", err)
			}
		}
	}
	send(0, 10)
	send(1, 20)
	h, atH = n.Status().Height, 30
	send(2, 5) // after H: bob has 35 at the latest height
	for n.Status().Height <= h+1 {
		time.Sleep(20 * time.Millisecond)
	}
	return gen, h, bob, atH
}

func openSource(t *testing.T, home string, gen *genesis.Doc) *export.Source {
	st, err := state.Open(filepath.Join(home, "state.db"), state.WithReadOnly(), state.WithOpenTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bs, err := store.Open(filepath.Join(home, "chain.db"), store.WithReadOnly(), store.WithOpenTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	return &export.Source{State: st, Blocks: bs, GenesisHash: gen.Hash()}
}

func TestExportOldHeightVerifiesAndRefusesTampering(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node")
	}
	home := t.TempDir()
	gen, h, bob, atH := chainAt(t, home)
	src := openSource(t, home, gen)
	p, err := src.Prepare(h)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := p.Write(&buf, nil); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	read := func(b []byte) (*export.Header, []export.Entry) {
		hdr, es, err := export.Read(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return hdr, es
	}
	hdr, entries := read(file)
	if err := export.Verify(hdr, entries); err != nil {
		t.Fatalf("a fresh export does not verify: %v", err)
	}
	if hdr.Height != h || hdr.ChainID != "old-chain" || hdr.GenesisHash != gen.Hash() {
		t.Fatalf("header: height %d chain %q genesis %s", hdr.Height, hdr.ChainID, hdr.GenesisHash.Short())
	}
	var got uint64
	for _, e := range entries {
		if e.Key == asset.BalanceKey("STAKE", bob) {
			if err := encoding.Unmarshal(e.Value, &got); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got != atH {
		t.Fatalf("bob's balance in the export of %d: %d, want %d (the state at H, not the latest)", h, got, atH)
	}
	// The same export again is the same bytes (operators compare them).
	var again bytes.Buffer
	if err := p.Write(&again, nil); err != nil || !bytes.Equal(again.Bytes(), file) {
		t.Fatalf("a second export differs (err %v)", err)
	}
	// The latest height by default.
	if p, err := src.Prepare(0); err != nil || p.Header.Height <= h {
		t.Fatalf("default height: %v %v", p, err)
	}

	tamper := map[string]struct {
		change func(*export.Header, []export.Entry) []export.Entry
		want   error
	}{
		"changed value": {func(_ *export.Header, es []export.Entry) []export.Entry {
			for i := range es {
				if es[i].Key == asset.BalanceKey("STAKE", bob) {
					es[i].Value = encoding.MustMarshal(uint64(1_000_000))
				}
			}
			return es
		}, export.ErrMismatch},
		"removed entry": {func(h *export.Header, es []export.Entry) []export.Entry {
			h.Entries--
			return es[1:]
		}, export.ErrMismatch},
		"changed root": {func(h *export.Header, es []export.Entry) []export.Entry {
			h.StateRoot[0] ^= 1
			return es
		}, export.ErrMismatch},
		"changed root in header and block header": {func(h *export.Header, es []export.Entry) []export.Entry {
			h.StateRoot[0] ^= 1
			h.Block.StateRoot = h.StateRoot
			h.HeaderHash = h.Block.Hash()
			return es
		}, export.ErrMismatch},
		"bad certificate signature": {func(h *export.Header, es []export.Entry) []export.Entry {
			h.Certificate.Votes[0].Signature[0] ^= 1
			return es
		}, export.ErrCertificate},
		"certificate without quorum": {func(h *export.Header, es []export.Entry) []export.Entry {
			h.Certificate.Votes = nil
			return es
		}, export.ErrCertificate},
		"other signers": {func(h *export.Header, es []export.Entry) []export.Entry {
			h.Signers[0].Power++
			return es
		}, export.ErrMismatch},
	}
	for name, tc := range tamper {
		t.Run(name, func(t *testing.T) {
			hdr, es := read(file)
			es = tc.change(hdr, es)
			if err := export.Verify(hdr, es); !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestExportRefusesARunningNode: the node holds its files; an export says so
// rather than waiting forever or reading a moving state.
func TestExportRefusesARunningNode(t *testing.T) {
	home := t.TempDir()
	val := seedKey(t, 1)
	gen := genesis.Default("old-chain", []crypto.PublicKey{val.Public()}, seedKey(t, 2).Public().Address())
	n, err := node.New(node.Config{Home: home, Genesis: gen, Key: val, Registry: builtin.Registry(), Models: builtin.Models()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := state.Open(filepath.Join(home, "state.db"), state.WithReadOnly(), state.WithOpenTimeout(50*time.Millisecond)); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("state: %v, want ErrLocked", err)
	}
	if _, err := store.Open(filepath.Join(home, "chain.db"), store.WithReadOnly(), store.WithOpenTimeout(50*time.Millisecond)); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("block store: %v, want ErrLocked", err)
	}
}

// TestGenesisImport builds a genesis that imports an export and checks the state
// it yields: the export's state as is, or with a new validator set whose bonds
// are accounted for; and that a changed file is refused.
func TestGenesisImport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node")
	}
	home := t.TempDir()
	gen, h, bob, atH := chainAt(t, home)
	src := openSource(t, home, gen)
	p, err := src.Prepare(h)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := p.Write(&buf, nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "old.export")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := export.FileSHA256(file)
	if err != nil {
		t.Fatal(err)
	}
	hdr := &p.Header
	newDoc := func(vals []genesis.Validator) *genesis.Doc {
		d := &genesis.Doc{ChainID: "new-chain", GenesisTime: "2026-12-01T00:00:00Z", Validators: vals,
			StateImport: &genesis.StateImport{File: "old.export", SHA256: sum, ChainID: hdr.ChainID,
				GenesisHash: hdr.GenesisHash.String(), Height: hdr.Height, StateRoot: hdr.StateRoot.String(),
				HeaderHash: hdr.HeaderHash.String()}}
		data, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "genesis.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err = genesis.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Validate(builtin.Registry()); err != nil {
			t.Fatal(err)
		}
		return d
	}
	old := hdr.Validators[0]
	same := []genesis.Validator{{Name: "val-1", PubKey: genesis.FromPublicKey(old.PubKey), Power: old.Power}}
	initState := func(d *genesis.Doc) (*state.Store, error) {
		st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.WithNoSync())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		_, err = genesis.Init(st, d, builtin.Models())
		return st, err
	}
	u64 := func(st *state.Store, key string) uint64 {
		v, ok, err := st.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		if ok {
			if err := encoding.Unmarshal(v, &n); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}

	// The same validators: the state is the export's, root and all.
	d := newDoc(same)
	st, err := initState(d)
	if err != nil {
		t.Fatal(err)
	}
	if st.Root() != hdr.StateRoot {
		t.Fatalf("imported root %s, exported %s", st.Root().Short(), hdr.StateRoot.Short())
	}
	if got := u64(st, asset.BalanceKey("STAKE", bob)); got != atH {
		t.Fatalf("bob has %d after the import, want %d", got, atH)
	}
	if d.Hash() == gen.Hash() {
		t.Fatal("the new genesis hashes as the old one")
	}

	// A new validator set: the old one's bond returns to its balance, the new
	// one's power is new stake.
	nv := seedKey(t, 50).Public()
	d = newDoc([]genesis.Validator{{Name: "new-1", PubKey: genesis.FromPublicKey(nv), Power: 70}})
	st, err = initState(d)
	if err != nil {
		t.Fatal(err)
	}
	supplyBefore := u64(src.State, asset.SupplyKey("STAKE"))
	if got := u64(st, validator.BondKey(old.Address)); got != 0 {
		t.Fatalf("the removed validator keeps a bond of %d", got)
	}
	if got := u64(st, validator.BondKey(nv.Address())); got != 70 {
		t.Fatalf("the new validator's bond is %d, want 70", got)
	}
	if got := u64(st, asset.BalanceKey("STAKE", old.Address)); got != old.Power {
		t.Fatalf("the removed validator's balance is %d, want its bond %d", got, old.Power)
	}
	if got, want := u64(st, asset.SupplyKey("STAKE")), supplyBefore+70; got != want {
		t.Fatalf("supply %d, want %d", got, want)
	}

	// A changed export file is refused, however small the change.
	data := bytes.Replace(buf.Bytes(), []byte(`"height":`), []byte(`"height": `), 1)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := initState(newDoc(same)); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("a changed export file: %v, want a SHA-256 mismatch", err)
	}
}
