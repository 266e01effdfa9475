// Package rbac is PLUG's role-based access control: roles name the transforms their
// members may call; a transaction runs only if every signer holds a role that permits
// its type. Roles start from the genesis file and change at run time through the
// rbac/* transforms, which only members of a role permitting them (the admin role, in
// the default genesis) may call.
//
// Everything lives under the "rbac/" key prefix. Every transaction may read it, and a
// transaction that writes it is a barrier for the parallel executor, so a policy is
// fixed while the transactions between two barriers run.
package rbac

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/transform"
)

// Prefix is the key namespace of RBAC.
const Prefix = "rbac/"

// Key of the sorted list of role names.
const RolesKey = "rbac/roles"

// Transform type names.
const (
	TypeSetRole = "rbac/set-role"
	TypeGrant   = "rbac/grant"
	TypeRevoke  = "rbac/revoke"
)

// Role is what a role may do.
type Role struct {
	// Transforms lists the transform types the role's members may call.
	Transforms []string `cbor:"1,keyasint" json:"transforms"`
	// Public roles count every identity as a member (e.g. "anyone may transfer").
	Public bool `cbor:"2,keyasint,omitempty" json:"public,omitempty"`
}

// RoleKey is where role name's definition is stored.
func RoleKey(name string) string { return Prefix + "role/" + name }

// MemberKey is where addr's membership of role name is stored.
func MemberKey(name string, addr crypto.Address) string {
	return Prefix + "member/" + name + "/" + addr.String()
}

var roleName = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,63}$`)

// ErrBadRole: a role name that does not fit the naming rule.
var ErrBadRole = errors.New("bad role name")

// CheckRoleName checks a role name: 1-64 of a-z 0-9 . _ : - , starting alphanumeric.
func CheckRoleName(name string) error {
	if !roleName.MatchString(name) {
		return fmt.Errorf("%w: %q (want 1-64 of a-z 0-9 . _ : -)", ErrBadRole, name)
	}
	return nil
}

// AddModels registers the rbac models.
func AddModels(ms *transform.Models) {
	ms.MustAdd(transform.Model{Name: "rbac-roles", Prefix: RolesKey, Default: func() any { return []string(nil) }})
	ms.MustAdd(transform.Model{Name: "rbac-role", Prefix: Prefix + "role/", Default: func() any { return Role{} }})
	ms.MustAdd(transform.Model{Name: "rbac-member", Prefix: Prefix + "member/", Default: func() any { return false }})
}

// Reader reads the RBAC namespace of a state.
type Reader interface {
	Get(key string, dst any) (bool, error)
}

// Policy is a snapshot of the roles, loaded once and used for many transactions.
type Policy struct {
	st     Reader
	byType map[string][]string // transform type -> roles permitting it
	public map[string]bool     // roles whose members are everyone
	mu     sync.Mutex
	cache  map[string]bool // role + "/" + addr -> member
}

// Load builds a policy from st. Membership is read lazily and memoized, so st must
// not change while the policy is in use.
func Load(st Reader) (*Policy, error) {
	var names []string
	if _, err := st.Get(RolesKey, &names); err != nil {
		return nil, fmt.Errorf("load roles: %w", err)
	}
	p := &Policy{st: st, byType: map[string][]string{}, public: map[string]bool{}, cache: map[string]bool{}}
	for _, n := range names {
		var r Role
		if _, err := st.Get(RoleKey(n), &r); err != nil {
			return nil, fmt.Errorf("load role %q: %w", n, err)
		}
		if r.Public {
			p.public[n] = true
		}
		for _, t := range r.Transforms {
			p.byType[t] = append(p.byType[t], n)
		}
	}
	return p, nil
}

// IsMember reports whether addr holds role name.
func (p *Policy) IsMember(name string, addr crypto.Address) (bool, error) {
	if p.public[name] {
		return true, nil
	}
	k := MemberKey(name, addr)
	p.mu.Lock()
	v, ok := p.cache[k]
	p.mu.Unlock()
	if ok {
		return v, nil
	}
	var m bool
	if _, err := p.st.Get(k, &m); err != nil {
		return false, err
	}
	p.mu.Lock()
	p.cache[k] = m
	p.mu.Unlock()
	return m, nil
}

// Allow returns nil if every signer holds a role permitting transform type typ.
func (p *Policy) Allow(typ string, signers []crypto.Address) error {
	roles := p.byType[typ]
	for _, s := range signers {
		ok := false
		for _, r := range roles {
			m, err := p.IsMember(r, s)
			if err != nil {
				return err
			}
			if m {
				ok = true
				break
			}
		}
		if !ok {
			if len(roles) == 0 {
				return fmt.Errorf("%w: no role may call %q", transform.ErrUnauthorized, typ)
			}
			return fmt.Errorf("%w: %s holds none of the roles %v that may call %q", transform.ErrUnauthorized, s, roles, typ)
		}
	}
	return nil
}

// SetRole defines or redefines a role.
type SetRole struct {
	Role       string   `cbor:"1,keyasint" json:"role"`
	Transforms []string `cbor:"2,keyasint" json:"transforms"`
	Public     bool     `cbor:"3,keyasint,omitempty" json:"public,omitempty"`
}

// Keys implements transform.Transform.
func (t *SetRole) Keys(*transform.Context) (r, w []string) {
	return nil, []string{RolesKey, RoleKey(t.Role)}
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *SetRole) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *SetRole) Verify(_ *transform.Context, _ transform.State) error {
	if err := CheckRoleName(t.Role); err != nil {
		return fmt.Errorf("%w: %v", transform.ErrInvalid, err)
	}
	seen := map[string]bool{}
	for _, tr := range t.Transforms {
		if tr == "" || seen[tr] {
			return fmt.Errorf("%w: empty or repeated transform %q in role %q", transform.ErrInvalid, tr, t.Role)
		}
		seen[tr] = true
	}
	return nil
}

// Apply implements transform.Transform.
func (t *SetRole) Apply(_ *transform.Context, st transform.State) error {
	var names []string
	if _, err := st.Get(RolesKey, &names); err != nil {
		return err
	}
	i := sort.SearchStrings(names, t.Role)
	if i == len(names) || names[i] != t.Role {
		names = append(names[:i], append([]string{t.Role}, names[i:]...)...)
		if err := st.Set(RolesKey, names); err != nil {
			return err
		}
	}
	trs := append([]string(nil), t.Transforms...)
	sort.Strings(trs)
	return st.Set(RoleKey(t.Role), Role{Transforms: trs, Public: t.Public})
}

// Grant makes Member a member of Role.
type Grant struct {
	Role   string         `cbor:"1,keyasint" json:"role"`
	Member crypto.Address `cbor:"2,keyasint" json:"member"`
}

// Keys implements transform.Transform.
func (t *Grant) Keys(*transform.Context) (r, w []string) {
	return []string{RoleKey(t.Role)}, []string{MemberKey(t.Role, t.Member)}
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *Grant) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Grant) Verify(_ *transform.Context, st transform.State) error {
	return roleExists(st, t.Role)
}

// Apply implements transform.Transform.
func (t *Grant) Apply(_ *transform.Context, st transform.State) error {
	return st.Set(MemberKey(t.Role, t.Member), true)
}

// Revoke removes Member from Role.
type Revoke struct {
	Role   string         `cbor:"1,keyasint" json:"role"`
	Member crypto.Address `cbor:"2,keyasint" json:"member"`
}

// Keys implements transform.Transform.
func (t *Revoke) Keys(*transform.Context) (r, w []string) {
	return []string{RoleKey(t.Role)}, []string{MemberKey(t.Role, t.Member)}
}

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *Revoke) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Revoke) Verify(_ *transform.Context, st transform.State) error {
	if err := roleExists(st, t.Role); err != nil {
		return err
	}
	var m bool
	if _, err := st.Get(MemberKey(t.Role, t.Member), &m); err != nil {
		return err
	}
	if !m {
		return fmt.Errorf("%w: %s is not a member of %q", transform.ErrNotFound, t.Member, t.Role)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Revoke) Apply(_ *transform.Context, st transform.State) error {
	return st.Delete(MemberKey(t.Role, t.Member))
}

func roleExists(st transform.State, name string) error {
	if err := CheckRoleName(name); err != nil {
		return fmt.Errorf("%w: %v", transform.ErrInvalid, err)
	}
	found, err := st.Get(RoleKey(name), new(Role))
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: role %q", transform.ErrNotFound, name)
	}
	return nil
}

// Register adds the rbac transforms to reg.
func Register(reg *transform.Registry) {
	reg.MustRegister(TypeSetRole, &SetRole{})
	reg.MustRegister(TypeGrant, &Grant{})
	reg.MustRegister(TypeRevoke, &Revoke{})
}
