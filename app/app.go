// Package app assembles the chain as the plug binary runs it: chain's built-ins
// (assets, RBAC, validators, nonces and any builtin.Extend extensions) plus
// crosschain's light clients and two-phase commit, with their models, their
// genesis section and their roles.
//
// It sits above chain/ and crosschain so that neither imports the other's
// assembly: a node executes whatever registry its caller passes, and every
// node of a chain must execute the same transforms, so every program that runs
// or talks to a plug chain (the plug binary, testnet, the relay, tests) takes
// the registry and models from here. Importing app also registers the
// crosschain genesis section (see CrosschainSection).
package app

import (
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
)

// Registry returns a registry of the plug chain's transforms: chain's built-ins,
// the builtin.Extend extensions and crosschain's transforms.
func Registry() *transform.Registry {
	r := builtin.Registry()
	crosschain.Register(r)
	return r
}

// Models returns the plug chain's models: chain's built-ins, the builtin.Extend
// extensions and crosschain's records.
func Models() *transform.Models {
	ms := builtin.Models()
	crosschain.AddModels(ms)
	return ms
}

// Executor returns an executor of Registry and Models.
func Executor(opts ...exec.Option) *exec.Executor {
	return exec.New(Registry(), Models(), opts...)
}
