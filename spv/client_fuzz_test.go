package spv_test

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/spv"
)

// TestUpdateByteMutation: any single-byte change to the encoding of the header, the
// certificate or the next set makes the update fail (at decoding or in Update) and
// leaves the client unchanged.
func TestUpdateByteMutation(t *testing.T) {
	tc := newTestChain(11, nil, nil)
	clients := make([]*spv.ClientState, 11)
	for h := uint64(1); h <= 10; h++ {
		clients[h] = tc.client(t, h)
	}
	reached := 0
	rapid.Check(t, func(rt *rapid.T) {
		at := rapid.Uint64Range(1, 10).Draw(rt, "height")
		c := clients[at]
		hdr, cert, next := tc.update(at + 1)
		part := rapid.IntRange(0, 2).Draw(rt, "part")
		var raw []byte
		switch part {
		case 0:
			raw = encoding.MustMarshal(&hdr)
		case 1:
			raw = encoding.MustMarshal(&cert)
		default:
			raw = encoding.MustMarshal(next)
		}
		i := rapid.IntRange(0, len(raw)-1).Draw(rt, "byte")
		raw[i] ^= byte(rapid.IntRange(1, 255).Draw(rt, "xor"))
		var err error
		switch part {
		case 0:
			hdr = header.Header{}
			err = encoding.Unmarshal(raw, &hdr)
		case 1:
			cert = consensus.Certificate{}
			err = encoding.Unmarshal(raw, &cert)
		default:
			next = nil
			err = encoding.Unmarshal(raw, &next)
		}
		if err != nil {
			return // the mutant is not even a valid encoding
		}
		reached++
		before := snap(c)
		if n, err := c.Update(hdr, cert, next); err == nil || n != nil {
			rt.Fatalf("mutated part %d byte %d accepted", part, i)
		}
		if !bytes.Equal(before, snap(c)) {
			rt.Fatal("a rejected update changed the client")
		}
	})
	t.Logf("%d mutants decoded and reached Update", reached)
}

// fuzzChain is the chain the fuzz target and its seeds share: a client at height 2,
// the genuine update to 3, and signatures by only two validators on a fork.
func fuzzChain(tb testing.TB) (*testChain, *spv.ClientState) {
	tc := newTestChain(4, nil, nil)
	return tc, tc.client(tb, 2)
}

// fuzzSeeds returns the seed inputs: encodings of update messages and of evidence.
func fuzzSeeds(tc *testChain) map[string][]byte {
	hdr, cert, next := tc.update(3)
	weak := tc.sign(hdr, 0, 0, 1)
	fork, _ := tc.conflicting(3)
	forkCert := tc.sign(fork, 1, 2, 3)
	return map[string][]byte{
		"valid-update":       encoding.MustMarshal(&spv.HeaderUpdate{Header: hdr, Cert: cert, NextSet: next}),
		"valid-update-noset": encoding.MustMarshal(&spv.HeaderUpdate{Header: hdr, Cert: cert}),
		"no-quorum":          encoding.MustMarshal(&spv.HeaderUpdate{Header: hdr, Cert: weak, NextSet: next}),
		"weak-misbehaviour": encoding.MustMarshal(&spv.Misbehaviour{Height: 3, HeaderA: hdr, CertA: cert,
			HeaderB: fork, CertB: forkCert}),
		"garbage": {0xa3, 0x01, 0xa0, 0x02, 0xf6, 0x03, 0x81, 0xa1, 0x03, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"empty":   {},
	}
}

// FuzzClientUpdate decodes arbitrary bytes as an update message and as misbehaviour
// evidence and submits them. It must never panic, never change the client it is
// given, accept no header at height 3 but the genuine one, and never freeze the
// client (no input holds a quorum of signatures on a fork).
func FuzzClientUpdate(f *testing.F) {
	tc, c := fuzzChain(f)
	seeds := fuzzSeeds(tc)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	genuine := tc.headers[3].Hash()
	before := snap(c)
	f.Fuzz(func(t *testing.T, data []byte) {
		var u spv.HeaderUpdate
		if encoding.Unmarshal(data, &u) == nil {
			n, err := c.Apply(&u)
			if err == nil && (n.Header.Hash() != genuine || n.Height != 3) {
				t.Fatalf("forged header accepted at height %d", n.Height)
			}
		}
		var m spv.Misbehaviour
		if encoding.Unmarshal(data, &m) == nil {
			if _, err := c.CheckMisbehaviour(m); err == nil {
				t.Fatal("client frozen without a fork")
			}
		}
		var s valset.Set
		if encoding.Unmarshal(data, &s) == nil {
			hdr, cert, _ := tc.update(3)
			// nil means "unchanged"; anything else must be the genuine next set.
			if n, err := c.Update(hdr, cert, s); err == nil && (n.NextSet.Hash() != tc.set(4).Hash() || s != nil && s.Hash() != tc.set(4).Hash()) {
				t.Fatal("foreign next set accepted")
			}
		}
		if !bytes.Equal(before, snap(c)) {
			t.Fatal("the client changed")
		}
	})
}

// TestWriteClientFuzzSeeds regenerates testdata/fuzz/FuzzClientUpdate when
// PLUG_WRITE_FUZZ_SEEDS=1; otherwise it checks that the committed seeds are current.
func TestWriteClientFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzClientUpdate")
	tc, _ := fuzzChain(t)
	write := os.Getenv("PLUG_WRITE_FUZZ_SEEDS") == "1"
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, raw := range fuzzSeeds(tc) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", raw)
		path := filepath.Join(dir, name)
		if write {
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != body {
			t.Errorf("seed %s is missing or stale (regenerate with PLUG_WRITE_FUZZ_SEEDS=1): %v", name, err)
		}
	}
}
