//go:build example

package main

import (
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/transform/example"
)

// Built with -tags example, plug (its nodes, relays and clients alike) also
// knows the oracle/publish transform of chain/transform/example; see
// docs/tutorial.md. An application registers its own transforms the same way,
// from a file like this one.
func init() { builtin.Extend(example.Register, example.AddModels) }
