package export

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/proof"
)

// BenchmarkFile writes and reads back an export of 1,000,000 entries of the size
// of balances (keys ~50 bytes, 9-byte values) and recomputes its root, the work
// of `plug node export` after the state is read and of from-export before the
// certificate check. One op is the whole file.
func BenchmarkFile(b *testing.B) {
	const n = 1_000_000
	keys := make([]string, n)
	vals := make([][]byte, n)
	leaves := make([]proof.StateLeafOf, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("balance/USD/%040x", i)
		vals[i] = []byte{0x1b, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)}
		leaves[i] = proof.StateLeafOf{Path: proof.KeyPath(keys[i]), ValueHash: proof.ValueHash(vals[i])}
	}
	hdr := &Header{Height: 1, StateRoot: proof.StateRoot(leaves), Entries: n}
	each := func(yield func(string, []byte) error) error {
		for i := range keys {
			if err := yield(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	}
	var buf bytes.Buffer
	var write, read, root time.Duration
	for b.Loop() {
		buf.Reset()
		t0 := time.Now()
		if err := Write(&buf, hdr, each, nil); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		_, entries, err := Read(bytes.NewReader(buf.Bytes()))
		if err != nil || len(entries) != n {
			b.Fatal(err, len(entries))
		}
		t2 := time.Now()
		ls := make([]proof.StateLeafOf, len(entries))
		for i, e := range entries {
			ls[i] = proof.StateLeafOf{Path: proof.KeyPath(e.Key), ValueHash: proof.ValueHash(e.Value)}
		}
		if proof.StateRoot(ls) != hdr.StateRoot {
			b.Fatal("root")
		}
		write, read, root = write+t1.Sub(t0), read+t2.Sub(t1), root+time.Since(t2)
	}
	b.ReportMetric(float64(buf.Len())/n, "file-bytes/entry")
	b.ReportMetric(write.Seconds()/float64(b.N), "write-s")
	b.ReportMetric(read.Seconds()/float64(b.N), "read-s")
	b.ReportMetric(root.Seconds()/float64(b.N), "root-s")
}
