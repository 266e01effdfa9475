// Package builtin assembles the transforms and models of chain/ that every PLUG
// chain has: assets, RBAC, validators, equivocation evidence and nonces (the
// executor's models). Applications start from these and register their own
// transforms and models next to them, with Extend; the plug application adds
// crosschain's in package app.
package builtin

import (
	"sync"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/evidence"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/liveness"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/validator"
)

// Registry returns a registry holding the built-in transforms.
func Registry() *transform.Registry {
	r := transform.NewRegistry()
	asset.Register(r)
	rbac.Register(r)
	validator.Register(r)
	evidence.Register(r)
	for _, e := range extensions() {
		if e.register != nil {
			e.register(r)
		}
	}
	return r
}

// Models returns the built-in models.
func Models() *transform.Models {
	ms := transform.NewModels()
	asset.AddModels(ms)
	rbac.AddModels(ms)
	validator.AddModels(ms)
	liveness.AddModels(ms)
	exec.AddModels(ms)
	for _, e := range extensions() {
		if e.addModels != nil {
			e.addModels(ms)
		}
	}
	return ms
}

// extension is one application's transforms and models.
type extension struct {
	register  func(*transform.Registry)
	addModels func(*transform.Models)
}

var (
	extMu sync.Mutex
	exts  []extension
)

// Extend adds an application's transforms (register) and models (addModels;
// either may be nil) to what Registry, Models and Executor return from then
// on, in the whole process: the node, the genesis checks and the clients of a
// plug binary built with it all see them. Call it from an init function, before
// anything asks for the registry. Every node of a chain must run the same
// extensions, or the nodes execute blocks differently and the chain halts.
func Extend(register func(*transform.Registry), addModels func(*transform.Models)) {
	extMu.Lock()
	defer extMu.Unlock()
	exts = append(exts, extension{register, addModels})
}

func extensions() []extension {
	extMu.Lock()
	defer extMu.Unlock()
	return append([]extension(nil), exts...)
}

// Executor returns an executor of the built-in transforms and models.
func Executor(opts ...exec.Option) *exec.Executor {
	return exec.New(Registry(), Models(), opts...)
}
