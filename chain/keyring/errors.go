package keyring

import (
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/crypto"
)

// Sentinel errors. Errors returned by a Keyring wrap one of them (test with
// errors.Is); their messages name the key and say what to do next.
var (
	ErrNotFound        = errors.New("key not found")
	ErrExists          = errors.New("key already exists")
	ErrBadName         = errors.New("bad key name")
	ErrWrongPassphrase = errors.New("wrong passphrase")
	ErrCorrupt         = errors.New("corrupt key file")
	ErrBackendMismatch = errors.New("key stored by another keyring backend")
	ErrNoPassphrase    = errors.New("passphrase required")
	ErrWeakPassphrase  = errors.New("passphrase too short")
	ErrUnknownScheme   = crypto.ErrUnknownScheme
)

// Error is a keyring error: a sentinel Kind, an optional Cause and a message
// for people.
type Error struct {
	Kind  error // one of the sentinel errors
	Cause error // underlying error, or nil
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns Kind and, if set, Cause.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

func newErr(kind, cause error, format string, args ...any) error {
	return &Error{Kind: kind, Cause: cause, Msg: fmt.Sprintf(format, args...)}
}

func (k *Keyring) errNotFound(name string) error {
	return newErr(ErrNotFound, nil, "key %q not found in %s: list keys with `plug keys list`", name, k.dir)
}

func (k *Keyring) errExists(name string) error {
	return newErr(ErrExists, nil, "key %q already exists in %s: choose another name, or delete it first with `plug keys delete %s --yes`",
		name, k.dir, name)
}

func (k *Keyring) errMismatch(kf *keyFile) error {
	if kf.Backend == Test {
		return newErr(ErrBackendMismatch, nil,
			"key %q is stored unencrypted by the test backend, but this keyring uses the %s backend: pass --keyring-backend test to use it",
			kf.Name, k.backend)
	}
	return newErr(ErrBackendMismatch, nil,
		"key %q is encrypted by the %s backend, but this keyring uses the %s backend: pass --keyring-backend %s to use it",
		kf.Name, kf.Backend, k.backend, kf.Backend)
}

func corrupt(path, name, detail string) error {
	return newErr(ErrCorrupt, nil, "key file %s is corrupt (%s): restore it from a backup, or remove it with `plug keys delete %s --yes`",
		path, detail, name)
}

func unknownScheme(id crypto.SchemeID) error {
	return newErr(ErrUnknownScheme, nil, "unknown signature scheme %q: use one of %v", id, crypto.Schemes())
}

// CheckName reports whether name is a valid key name: 1 to 64 characters from
// a-z, A-Z, 0-9, '.', '_' and '-', not starting with '.' or '-' (which would
// make hidden files and look like command-line flags).
func CheckName(name string) error {
	bad := len(name) == 0 || len(name) > 64 || name[0] == '.' || name[0] == '-'
	for i := 0; i < len(name) && !bad; i++ {
		c := name[i]
		bad = !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-')
	}
	if bad {
		return newErr(ErrBadName, nil,
			"bad key name %q: use 1 to 64 characters from a-z A-Z 0-9 . _ - , not starting with . or -", name)
	}
	return nil
}
