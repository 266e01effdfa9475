package crypto

import (
	"testing"
)

// FuzzVerify feeds arbitrary keys, messages and signatures to both schemes:
// verification must never panic, and batch and single verification must agree,
// alone, twice in one batch and next to a valid item.
func FuzzVerify(f *testing.F) {
	for i, it := range signed(f, 4, Ed25519, P256) {
		f.Add(uint8(i), it.Pub.Key, it.Msg, it.Sig)
	}
	can, non := smallOrderEncodings(f)
	f.Add(uint8(0), can[2], []byte("Zcash"), append(append([]byte(nil), non[0]...), make([]byte, 32)...))
	f.Add(uint8(0), []byte{}, []byte{}, []byte{})

	anchors := map[SchemeID]Item{}
	for _, id := range schemes {
		anchors[id] = signed(f, 1, id)[0]
	}
	f.Fuzz(func(t *testing.T, sel uint8, pub, msg, sig []byte) {
		id := schemes[int(sel)%len(schemes)]
		it := Item{PublicKey{id, pub}, msg, sig}
		single := Verify(it.Pub, msg, sig)
		s, _ := Lookup(id)
		if err := s.Verify(pub, msg, sig); (err == nil) != (single == nil) {
			t.Fatalf("scheme Verify %v, package Verify %v", err, single)
		}
		a := anchors[id]
		for _, batch := range []struct {
			items  []Item
			anchor int // index of the known-valid item, or -1
		}{
			{[]Item{it}, -1}, {[]Item{it, it}, -1}, {[]Item{a, it}, 0}, {[]Item{it, a, it}, 1},
		} {
			res := VerifyBatch(batch.items)
			own := s.VerifyBatch(batch.items)
			for i := range batch.items {
				if i == batch.anchor {
					if res[i] != nil || own[i] != nil {
						t.Fatalf("valid anchor rejected next to fuzz item: %v %v", res[i], own[i])
					}
					continue
				}
				if (res[i] == nil) != (single == nil) || (own[i] == nil) != (single == nil) {
					t.Fatalf("batch of %d, item %d: VerifyBatch %v, scheme VerifyBatch %v, Verify %v",
						len(batch.items), i, res[i], own[i], single)
				}
			}
		}
	})
}
