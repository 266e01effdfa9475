// Package transform defines what application code writes: a Transform is the payload
// of a transaction, a plain Go struct whose exported fields are its arguments. The
// executor decodes it generically (no Marshal/Unmarshal per type), asks it which
// state keys it reads and writes, checks its required signatures and the RBAC policy,
// then calls Verify and Apply against a view of the state limited to those keys.
package transform

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
)

// Context is what a transform may know of the transaction and block it runs in.
type Context struct {
	ChainID string
	Height  uint64
	// Time is the agreed block time in Unix milliseconds.
	Time int64
	// Signers are the authenticated signers of the transaction, in its order.
	Signers []crypto.Address
	// SignerKeys are the signers' public keys, in the same order.
	SignerKeys []crypto.PublicKey
	// Policy is the chain's RBAC policy as of this transaction, set by the executor
	// (nil elsewhere): a transform that asks whether some other identity may call a
	// transform uses it instead of loading the policy from state once per call.
	Policy Authorizer
}

// Authorizer answers whether signers hold a role permitting a transform type
// (rbac.Policy is one); the error wraps ErrUnauthorized when they do not.
type Authorizer interface {
	Allow(transformType string, signers []crypto.Address) error
}

// Signed reports whether addr signed the transaction.
func (c *Context) Signed(addr crypto.Address) bool {
	for _, s := range c.Signers {
		if s == addr {
			return true
		}
	}
	return false
}

// State is the view of the state a transform runs against. It holds only the keys the
// transform declared (plus read-only access to the rbac/ namespace); touching any other
// key fails with ErrUndeclaredKey, the same way on every node and every schedule.
type State interface {
	// Get decodes the value at key into dst. A missing key decodes its model's
	// default; found reports whether the key was present.
	Get(key string, dst any) (found bool, err error)
	// Set stores v (canonically encoded) at key, after its model's schema check.
	Set(key string, v any) error
	// Delete removes key.
	Delete(key string) error
}

// Transform is a transaction's payload: user land code that checks and changes state.
type Transform interface {
	// Keys returns the state keys the transform reads and the ones it writes, derived
	// from its fields and the context alone (never from state). The executor runs
	// transactions whose key sets do not conflict in parallel.
	Keys(ctx *Context) (reads, writes []string)
	// Authorizations returns the identities that must have signed the transaction.
	Authorizations(ctx *Context) []crypto.Address
	// Verify checks the transform against the state without changing it.
	Verify(ctx *Context, st State) error
	// Apply changes the state. It runs only after Verify succeeded; an error rolls
	// back everything the transform wrote.
	Apply(ctx *Context, st State) error
}

// SignatureCarrier is implemented by transforms that carry signatures besides
// their transaction's own (a crosschain trade's parties, say) and check them
// with crypto.VerifyCached. The executor checks all of a block's carried
// signatures in one batch over the cores before running it, which leaves the
// transforms' own checks as cache hits. A carrier that lists its signatures
// wrong only loses the speed-up: the transform still checks them itself.
type SignatureCarrier interface {
	CarriedSignatures() []crypto.Item
}

// Partial is implemented by transforms made of independent parts of which some
// may not apply (a relay's batch of crosschain steps, each of which another
// relay may have done first). After a successful Apply the executor records
// Skipped in the receipt, so that whoever reads the block learns which parts
// took effect, and why the others did not, without re-executing it.
type Partial interface {
	Skipped() []Skip
}

// Skip is one part of a Partial transform that did not apply.
type Skip struct {
	// Part is the part's index in the transform.
	Part uint32 `cbor:"1,keyasint" json:"part"`
	// Error says why; it is deterministic text, as a receipt's error is.
	Error string `cbor:"2,keyasint" json:"error"`
}

// ModelUser is implemented by transforms that declare the models they use, so that a
// chain can refuse to register a transform whose models it lacks.
type ModelUser interface {
	Models() []string
}

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrUnknownTransform: no transform is registered under the transaction's type.
	ErrUnknownTransform = errors.New("unknown transform type")
	// ErrUndeclaredKey: a transform touched a key it did not declare.
	ErrUndeclaredKey = errors.New("undeclared key")
	// ErrReadOnlyKey: a transform wrote a key it declared only for reading.
	ErrReadOnlyKey = errors.New("key declared read-only")
	// ErrUnauthorized: a required signature or RBAC permission is missing.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrInvalid: the transform's own checks refused it.
	ErrInvalid = errors.New("invalid transform")
	// ErrInsufficientFunds: a debit exceeds a balance.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrNotFound: a named object (asset, role, validator) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrSchema: a value does not fit its model's schema.
	ErrSchema = errors.New("schema violation")
)

// Registry maps transaction types to transform struct types.
type Registry struct {
	mu    sync.RWMutex
	types map[string]reflect.Type
	names map[reflect.Type]string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{types: map[string]reflect.Type{}, names: map[reflect.Type]string{}}
}

// Register adds a transform under name. proto is a pointer to a zero value of the
// transform's struct type; every transaction of this type is decoded into a fresh one.
func (r *Registry) Register(name string, proto Transform) error {
	t := reflect.TypeOf(proto)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("register %q: prototype must be a pointer to a struct, got %T", name, proto)
	}
	if name == "" {
		return fmt.Errorf("register %T: empty type name", proto)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.types[name]; dup {
		return fmt.Errorf("register %q: type already registered", name)
	}
	r.types[name] = t.Elem()
	r.names[t.Elem()] = name
	return nil
}

// MustRegister is Register that panics, for package-level set-up.
func (r *Registry) MustRegister(name string, proto Transform) {
	if err := r.Register(name, proto); err != nil {
		panic(err)
	}
}

// Decode returns a new transform of type name decoded from its canonical payload.
func (r *Registry) Decode(name string, payload []byte) (Transform, error) {
	r.mu.RLock()
	t, ok := r.types[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTransform, name)
	}
	v := reflect.New(t)
	if err := encoding.Unmarshal(payload, v.Interface()); err != nil {
		return nil, fmt.Errorf("decode %q payload: %w", name, err)
	}
	return v.Interface().(Transform), nil
}

// New returns a new zero transform of type name, for callers that fill it from
// another encoding (e.g. JSON from a command line) before encoding it canonically.
func (r *Registry) New(name string) (Transform, error) {
	r.mu.RLock()
	t, ok := r.types[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTransform, name)
	}
	return reflect.New(t).Interface().(Transform), nil
}

// Name returns the type name under which tr's struct type is registered.
func (r *Registry) Name(tr Transform) (string, error) {
	t := reflect.TypeOf(tr)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	r.mu.RLock()
	name, ok := r.names[t]
	r.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("%w: %T is not registered", ErrUnknownTransform, tr)
	}
	return name, nil
}

// Names lists the registered type names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
