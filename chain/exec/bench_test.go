package exec_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/tx"
)

// BenchmarkExecuteTransfers executes a block of 10,000 pre-signed transfers among
// 100,000 accounts held in a real bbolt state, and computes the resulting state root
// (Stage); signature checks are excluded (done once, ahead, as a mempool does).
// Metric: tx/s, for the serial reference and the parallel executor.
func BenchmarkExecuteTransfers(b *testing.B) {
	const accounts, block = 100_000, 10_000
	st, err := state.Open(filepath.Join(b.TempDir(), "state.db"), state.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(42, 42))
	addrs := make([]crypto.Address, accounts)
	for i := range addrs {
		binary.BigEndian.PutUint64(addrs[i][:], r.Uint64())
		binary.BigEndian.PutUint32(addrs[i][8:], uint32(i))
	}
	// Senders are real keys; the first block of transfers comes from 10,000 distinct
	// senders so that the block has realistic, mostly non-conflicting traffic, with
	// some receivers shared by chance.
	keys := make([]crypto.PrivateKey, block)
	for i := range keys {
		var seed [32]byte
		binary.BigEndian.PutUint64(seed[:], uint64(i))
		if keys[i], err = crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:])); err != nil {
			b.Fatal(err)
		}
		addrs[i] = keys[i].Public().Address()
	}
	var changes []state.Change
	put := func(k string, v any) {
		changes = append(changes, state.Change{Key: k, Value: encoding.MustMarshal(v)})
	}
	put(rbac.RolesKey, []string{"public"})
	put(rbac.RoleKey("public"), rbac.Role{Public: true, Transforms: []string{asset.TypeTransfer}})
	put(asset.DefKey("USD"), asset.Definition{Issuer: "public"})
	put(asset.SupplyKey("USD"), uint64(accounts)*1_000_000)
	for _, a := range addrs {
		put(asset.BalanceKey("USD", a), uint64(1_000_000))
	}
	batch, err := st.Stage(changes)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Commit(batch); err != nil {
		b.Fatal(err)
	}
	reg := executor(1)
	_ = reg
	w := &world{reg: newWorld(b, 1, 1, 0).reg}
	txs := make([]*tx.Tx, block)
	for i := range txs {
		to := addrs[r.IntN(accounts)]
		if to == addrs[i] {
			to = addrs[(i+1)%accounts]
		}
		x, err := tx.New(w.reg, chainID, &asset.Transfer{Asset: "USD", From: addrs[i], To: to, Amount: 1 + uint64(r.IntN(100))},
			tx.Signer{Key: keys[i].Public(), Nonce: 0})
		if err != nil {
			b.Fatal(err)
		}
		if err := x.Sign(keys[i]); err != nil {
			b.Fatal(err)
		}
		// As a node holds it: decoded from the wire, so its ID is a hash of its bytes.
		raw, _ := x.Encode()
		if x, err = tx.Decode(raw); err != nil {
			b.Fatal(err)
		}
		txs[i] = x
	}
	sigs := tx.VerifyProofs(txs)
	for i, e := range sigs {
		if e != nil {
			b.Fatalf("tx %d: %v", i, e)
		}
	}
	for _, mode := range []struct {
		name    string
		workers int
		serial  bool
	}{{"serial", 1, true}, {"parallel", 0, false}} {
		b.Run(mode.name, func(b *testing.B) {
			e := executor(mode.workers)
			run := e.Execute
			if mode.serial {
				run = e.ExecuteSerial
			}
			var root fmt.Stringer
			var execTime, stageTime time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				res, err := run(st, env, txs, sigs)
				t1 := time.Now()
				execTime += t1.Sub(t0)
				if err != nil {
					b.Fatal(err)
				}
				for j, rc := range res.Receipts {
					if rc.Code != exec.OK {
						b.Fatalf("tx %d: %s", j, rc.Error)
					}
				}
				batch, err := st.Stage(res.Changes)
				if err != nil {
					b.Fatal(err)
				}
				root = batch.Root()
				stageTime += time.Since(t1)
			}
			b.ReportMetric(float64(block*b.N)/b.Elapsed().Seconds(), "tx/s")
			// Where the time goes: executing the transactions, and computing the new
			// state root (Stage) from their changes.
			b.ReportMetric(execTime.Seconds()*1000/float64(b.N), "exec-ms/block")
			b.ReportMetric(stageTime.Seconds()*1000/float64(b.N), "root-ms/block")
			b.Logf("state root %s", root)
		})
	}
}
