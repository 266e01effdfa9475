// Package builtin assembles the transforms and models every PLUG chain has: assets,
// RBAC, validators, nonces, and the crosschain light clients and two-phase commit. Applications start from these and register their own
// transforms and models next to them.
package builtin

import (
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/crosschain"
)

// Registry returns a registry holding the built-in transforms.
func Registry() *transform.Registry {
	r := transform.NewRegistry()
	asset.Register(r)
	rbac.Register(r)
	validator.Register(r)
	crosschain.Register(r)
	return r
}

// Models returns the built-in models.
func Models() *transform.Models {
	ms := transform.NewModels()
	asset.AddModels(ms)
	rbac.AddModels(ms)
	validator.AddModels(ms)
	exec.AddModels(ms)
	crosschain.AddModels(ms)
	return ms
}

// Executor returns an executor of the built-in transforms and models.
func Executor(opts ...exec.Option) *exec.Executor {
	return exec.New(Registry(), Models(), opts...)
}
