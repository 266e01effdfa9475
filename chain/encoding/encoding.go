// Package encoding is PLUG's one canonical encoding: CBOR in the core deterministic
// mode of RFC 8949 §4.2 (github.com/fxamacker/cbor/v2). Everything that is hashed or
// signed goes through Marshal, so equal values always have equal bytes; Unmarshal is
// strict and rejects any input that Marshal would not have produced, so one value has
// exactly one accepted encoding (no malleable transactions or headers).
package encoding

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"

	"github.com/plugchain/plug/chain/hash"
)

// MaxSize is the largest encoding Unmarshal accepts; bigger input is refused before
// it is parsed.
const MaxSize = 4 << 20

// Sentinel errors of decoding; callers branch on them with errors.Is.
var (
	// ErrMalformed: the bytes are not a valid encoding of the wanted type.
	ErrMalformed = errors.New("malformed encoding")
	// ErrNonCanonical: the bytes decode, but are not the canonical encoding.
	ErrNonCanonical = errors.New("non-canonical encoding")
	// ErrTooLarge: the input exceeds MaxSize or a nesting/length limit.
	ErrTooLarge = errors.New("encoding too large")
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeUnixMicro
	// Core deterministic mode already sorts map keys bytewise and picks shortest
	// forms; we also forbid NaN/Inf ambiguities by encoding floats as is (floats are
	// discouraged in state, see docs/encoding.md).
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	do := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   32,
		MaxArrayElements:  1 << 20,
		MaxMapPairs:       1 << 20,
		DefaultMapType:    reflect.TypeOf(map[string]any(nil)),
		IntDec:            cbor.IntDecConvertNone,
		UTF8:              cbor.UTF8RejectInvalid,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// Marshal returns the canonical encoding of v.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b, nil
}

// MustMarshal is Marshal for values whose types are known to encode (fixed structs);
// a failure is a programming error.
func MustMarshal(v any) []byte {
	b, err := Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Unmarshal decodes canonical bytes into v. It rejects input over MaxSize, trailing
// bytes, unknown struct fields, duplicate map keys, indefinite lengths, tags, and any
// encoding that is not the one Marshal produces for the decoded value.
func Unmarshal(data []byte, v any) error {
	if len(data) > MaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxSize)
	}
	if err := decMode.Unmarshal(data, v); err != nil {
		var me *cbor.MaxNestedLevelError
		var ae *cbor.MaxArrayElementsError
		var mp *cbor.MaxMapPairsError
		if errors.As(err, &me) || errors.As(err, &ae) || errors.As(err, &mp) {
			return fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		return fmt.Errorf("%w: decode %T: %v", ErrMalformed, v, err)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if err := encMode.NewEncoder(buf).Encode(reflect.ValueOf(v).Elem().Interface()); err != nil {
		return fmt.Errorf("%w: re-encode %T: %v", ErrMalformed, v, err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		return fmt.Errorf("%w: %T", ErrNonCanonical, v)
	}
	return nil
}

// UnmarshalLax decodes with Unmarshal's strict rules and limits but without its
// canonical re-encoding check, which would double the cost. Use it only where the
// bytes' identity does not matter: values this node wrote itself (state, stores)
// and transport wrappers that are never hashed or signed (gossip envelopes). Never
// use it for anything whose hash or signature is checked.
func UnmarshalLax(data []byte, v any) error {
	if len(data) > MaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxSize)
	}
	if err := decMode.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: decode stored %T: %v", ErrMalformed, v, err)
	}
	return nil
}

// Hash returns the domain-separated hash of v's canonical encoding.
func Hash(domain string, v any) (hash.Hash, error) {
	b, err := Marshal(v)
	if err != nil {
		return hash.Hash{}, err
	}
	return hash.Sum(domain, b), nil
}

// MustHash is Hash for values whose types are known to encode.
func MustHash(domain string, v any) hash.Hash {
	return hash.Sum(domain, MustMarshal(v))
}
