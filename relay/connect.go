package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/crosschain"
)

// CreateClient makes dst keep an on-chain light client of src, trusting src's
// header at height (the root of trust an admin vouches for; 1 for a new
// chain): it submits lc/create signed by admin, who needs lc/create on dst,
// and waits for the commit. It does nothing and returns false when dst already
// has a client of src. The header comes from src's gateway with its commit
// certificate checked by the client package; for chains you do not run, pass a
// height whose header hash you have compared out of band.
func CreateClient(ctx context.Context, src, dst *client.Client, srcID, dstID string, admin crypto.PrivateKey, height uint64) (bool, error) {
	res, err := dst.State(ctx, 0, crosschain.LCKey(srcID), false)
	if err != nil {
		return false, fmt.Errorf("read %s on %s: %w", crosschain.LCKey(srcID), dstID, err)
	}
	if res.Found {
		return false, nil
	}
	hr, err := src.Header(ctx, height)
	if err != nil {
		return false, fmt.Errorf("header %d of %s: %w", height, srcID, err)
	}
	vs, err := src.State(ctx, height, validator.SetKey, true)
	if err != nil {
		return false, fmt.Errorf("validator set of %s at %d: %w", srcID, height, err)
	}
	var set valset.Set
	if err := vs.Decode(&set); err != nil {
		return false, fmt.Errorf("validator set of %s at %d: %w", srcID, height, err)
	}
	addr := admin.Public().Address()
	nonce, err := dst.Nonce(ctx, addr)
	if err != nil {
		return false, err
	}
	t, err := tx.New(Registry(), dstID, &crosschain.LCCreate{ChainID: srcID, Header: *hr.Header, NextSet: set},
		tx.Signer{Key: admin.Public(), Nonce: nonce})
	if err != nil {
		return false, err
	}
	if err := t.Sign(admin); err != nil {
		return false, err
	}
	sr, err := dst.Submit(ctx, t, true, 30*time.Second)
	if err != nil {
		return false, fmt.Errorf("submit lc/create on %s: %w", dstID, err)
	}
	if sr.Result == nil {
		return false, fmt.Errorf("lc/create %s on %s did not commit within 30 s", sr.ID.Short(), dstID)
	}
	if sr.Result.Code != 0 {
		return false, fmt.Errorf("lc/create on %s failed: %s", dstID, sr.Result.Error)
	}
	return true, nil
}
