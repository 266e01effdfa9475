package gateway

import (
	"errors"

	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/store"
)

// CodeStorage is the code of a 500 whose cause is a damaged database of the
// node (a stored block, record or state node that cannot be read): the node's
// operator has to repair it (`plug node check`, `plug node resync`); another
// node may answer.
const CodeStorage = "storage_corrupt"

// storageFault reports whether err comes from a damaged database.
func storageFault(err error) bool {
	return errors.Is(err, boltcheck.ErrCorrupt) || errors.Is(err, store.ErrCorrupt) || errors.Is(err, state.ErrCorrupt)
}
