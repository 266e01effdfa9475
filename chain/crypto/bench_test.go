package crypto

import (
	stded25519 "crypto/ed25519"
	"testing"
)

// benchItems returns n valid ed25519 items by 64 distinct keys.
func benchItems(b *testing.B, n int) []Item {
	b.Helper()
	items := make([]Item, n)
	for i := range items {
		k, err := GenerateKey(Ed25519, detRand(byte(i%64)))
		if err != nil {
			b.Fatal(err)
		}
		msg := make([]byte, 200) // about a transaction body
		msg[0], msg[1] = byte(i), byte(i>>8)
		sig, _ := k.Sign(msg)
		items[i] = Item{Pub: k.Public(), Msg: msg, Sig: sig}
	}
	return items
}

// BenchmarkVerifySingle verifies one ed25519 signature at a time: /stdlib is
// crypto/ed25519 (the physical baseline), /plug is this package's Verify
// (curve25519-voi, ZIP-215). /p256 is our P-256 Verify, for reference.
func BenchmarkVerifySingle(b *testing.B) {
	items := benchItems(b, 1024)
	report := func(b *testing.B, n int) {
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sigs/s")
	}
	b.Run("stdlib", func(b *testing.B) {
		n := 0
		for b.Loop() {
			it := &items[n%len(items)]
			if !stded25519.Verify(it.Pub.Key, it.Msg, it.Sig) {
				b.Fatal("invalid")
			}
			n++
		}
		report(b, n)
	})
	b.Run("plug", func(b *testing.B) {
		n := 0
		for b.Loop() {
			it := &items[n%len(items)]
			if err := Verify(it.Pub, it.Msg, it.Sig); err != nil {
				b.Fatal(err)
			}
			n++
		}
		report(b, n)
	})
	b.Run("p256", func(b *testing.B) {
		p := signed(b, 64, P256)
		n := 0
		for b.Loop() {
			it := &p[n%len(p)]
			if err := Verify(it.Pub, it.Msg, it.Sig); err != nil {
				b.Fatal(err)
			}
			n++
		}
		report(b, n)
	})
}

// BenchmarkVerifyBatch1024 verifies 1024 valid ed25519 signatures per
// operation: /all-cores through VerifyBatch (chunks over GOMAXPROCS
// goroutines), /one-core through one curve25519-voi batch verifier on the
// calling goroutine.
func BenchmarkVerifyBatch1024(b *testing.B) {
	items := benchItems(b, 1024)
	run := func(b *testing.B, verify func([]Item) []error) {
		n := 0
		for b.Loop() {
			for _, err := range verify(items) {
				if err != nil {
					b.Fatal(err)
				}
			}
			n += len(items)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sigs/s")
	}
	b.Run("all-cores", func(b *testing.B) { run(b, VerifyBatch) })
	b.Run("one-core", func(b *testing.B) { run(b, Ed25519Scheme{}.VerifyBatch) })
}
