package plugcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
)

// The trade store is a directory of JSON files, one per submitted crosschain
// transaction (ID.json), so that status commands can find a trade by ID
// without the terms it was submitted with.

// record is a submitted trade as kept in the store.
type record struct {
	Kind      settlement.Kind `json:"kind"`
	XTx       crosschain.XTx  `json:"xtx"`
	Submitted time.Time       `json:"submitted"`
}

// save records r in x's trade store.
func (x *xenv) save(r record) error { return saveRecord(x.store, r) }

// saveRecord records a submitted crosschain transaction in the trade store dir,
// where `plug settle status` and `plug xchain status` find it by ID.
func saveRecord(dir string, r record) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	id := r.XTx.ID()
	return os.WriteFile(filepath.Join(dir, id.String()+".json"), append(b, '\n'), 0o644)
}

// load reads the record of transaction id from x's trade store.
func (x *xenv) load(id hash.Hash) (*record, error) {
	p := filepath.Join(x.store, id.String()+".json")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("trade %s is not recorded in %s: run the command with the --testnet or --store of the "+
			"`plug settle` that submitted it, or pass the transaction with --xtx FILE", id.Short(), x.store)
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if r.XTx.ID() != id {
		return nil, fmt.Errorf("%s holds another transaction than %s", p, id.Short())
	}
	return &r, nil
}

// readXTxFile reads transaction id from path: a trade store record, or the
// bare transaction (an XTx in JSON).
func readXTxFile(path string, id hash.Hash) (*record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || len(r.XTx.Legs) == 0 {
		r = record{}
		if err := json.Unmarshal(b, &r.XTx); err != nil {
			return nil, fmt.Errorf("--xtx %s: %w", path, err)
		}
	}
	if got := r.XTx.ID(); got != id {
		return nil, fmt.Errorf("--xtx %s holds transaction %s, not %s", path, got.Short(), id.Short())
	}
	return &r, nil
}
