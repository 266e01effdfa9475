package encoding_test

import (
	"errors"
	"testing"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
)

type sample struct {
	A uint64            `cbor:"1,keyasint"`
	B string            `cbor:"2,keyasint"`
	C map[string]uint64 `cbor:"3,keyasint,omitempty"`
}

func TestMarshalIsDeterministic(t *testing.T) {
	v := sample{A: 1, B: "x", C: map[string]uint64{"z": 1, "a": 2, "m": 3, "bb": 4}}
	first := encoding.MustMarshal(v)
	for i := 0; i < 50; i++ {
		if got := encoding.MustMarshal(v); string(got) != string(first) {
			t.Fatalf("encoding changed between runs: %x vs %x", got, first)
		}
	}
	var back sample
	if err := encoding.Unmarshal(first, &back); err != nil {
		t.Fatal(err)
	}
	if back.A != 1 || back.B != "x" || back.C["bb"] != 4 {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestUnmarshalRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"non-shortest integer", []byte{0xa1, 0x01, 0x18, 0x05}, encoding.ErrNonCanonical},         // {1: 5} with a 1-byte argument
		{"unsorted map keys", []byte{0xa2, 0x02, 0x61, 'x', 0x01, 0x01}, encoding.ErrNonCanonical}, // {2:"x", 1:1}
		{"duplicate key", []byte{0xa2, 0x01, 0x01, 0x01, 0x02}, encoding.ErrMalformed},
		{"unknown field", []byte{0xa1, 0x09, 0x01}, encoding.ErrMalformed},
		{"indefinite length", []byte{0xbf, 0x01, 0x01, 0xff}, encoding.ErrMalformed},
		{"tag", []byte{0xa1, 0x01, 0xc1, 0x01}, encoding.ErrMalformed},
		{"trailing bytes", []byte{0xa1, 0x01, 0x01, 0x00}, encoding.ErrMalformed},
		{"truncated", []byte{0xa1, 0x02}, encoding.ErrMalformed},
		{"wrong type", []byte{0xa1, 0x01, 0x61, 'x'}, encoding.ErrMalformed},
		{"invalid utf-8", []byte{0xa1, 0x02, 0x61, 0xff}, encoding.ErrMalformed},
		{"empty", nil, encoding.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v sample
			err := encoding.Unmarshal(c.in, &v)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	var v []any
	deep := make([]byte, 0, 100)
	for i := 0; i < 60; i++ {
		deep = append(deep, 0x81)
	}
	deep = append(deep, 0x01)
	if err := encoding.Unmarshal(deep, &v); !errors.Is(err, encoding.ErrTooLarge) {
		t.Fatalf("deep nesting: %v", err)
	}
	if err := encoding.Unmarshal(make([]byte, encoding.MaxSize+1), &v); !errors.Is(err, encoding.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestDomainsSeparateEqualBytes(t *testing.T) {
	b := []byte("same bytes")
	seen := map[hash.Hash]string{}
	for _, d := range []string{hash.DomainTx, hash.DomainTxID, hash.DomainHeader, hash.DomainVote, hash.DomainValidatorSet,
		hash.DomainAddress, hash.DomainSMTKey, hash.DomainSMTValue, hash.DomainSMTLeaf, hash.DomainSMTNode,
		hash.DomainListLeaf, hash.DomainListNode, hash.DomainReceipt, hash.DomainGenesis, hash.DomainProposal, hash.DomainXTx} {
		h := hash.Sum(d, b)
		if other, dup := seen[h]; dup {
			t.Fatalf("domains %q and %q hash alike", d, other)
		}
		seen[h] = d
	}
	// The length prefix keeps a domain from absorbing the data's first bytes.
	if hash.Sum("ab", []byte("c")) == hash.Sum("a", []byte("bc")) {
		t.Fatal("domain boundary is ambiguous")
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(encoding.MustMarshal(sample{A: 1, B: "x"}))
	f.Add([]byte{0xa1, 0x01, 0x18, 0x05})
	f.Add([]byte{0xbf, 0x01, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v sample
		if err := encoding.Unmarshal(data, &v); err != nil {
			return
		}
		// Whatever is accepted is canonical: it re-encodes to the same bytes.
		if got := encoding.MustMarshal(v); string(got) != string(data) {
			t.Fatalf("accepted non-canonical input %x (canonical %x)", data, got)
		}
	})
}
