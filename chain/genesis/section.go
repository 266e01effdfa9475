package genesis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/plugchain/plug/chain/crypto"
)

// A Section is an optional top-level object of the genesis file that a layer
// above chain/ contributes, such as the crosschain parameters of the plug
// application. Genesis parses, checks, hashes and applies a section without
// knowing what it holds, and Default asks it for the roles its transforms need.
//
// Register sections with RegisterSection from an init function of the package
// that assembles the application, so that every part of a binary (the node,
// the genesis commands, testnet) reads the same file format: a binary without
// the section refuses a file that has it as an unknown field.
type Section struct {
	// Name is the section's key in the JSON document, e.g. "crosschain".
	Name string
	// HashKey is the section's key in the normal form Doc.Hash encodes: unique
	// and above genesis's own keys (1-6), and not 64 (state_import's). A section absent from a document is
	// absent from its normal form, so registering a section leaves the hash of
	// documents without it unchanged.
	HashKey int
	// New returns a pointer to a new zero value of the section's JSON form, a
	// struct: Parse decodes the section into it (unknown fields are errors).
	New func() Part
	// Roles, if set, adds the roles the section's transforms need to a
	// document Default builds.
	Roles func(d *Doc, admin crypto.Address, validators []crypto.PublicKey)
}

// Part is the decoded value of a Section in one document.
type Part interface {
	// Check returns the part's problems; Validate reports each at the section's
	// name followed by Problem.Field.
	Check() []Problem
	// Normal returns the part's normal form for Doc.Hash: equal for parts that
	// differ only in spelling of equal values. It is called on unchecked parts
	// too, so it must not fail.
	Normal() any
	// State returns what the part writes into the initial state of a valid
	// document: each entry's Value is the Go value the transforms read at Key.
	State() []Entry
}

// Problem is one rule a Part breaks.
type Problem struct {
	// Field is the path of the offending field inside the section, e.g.
	// "max_lock".
	Field string
	// Err says what is wrong and what is expected.
	Err error
}

// Entry is one key of the initial state and the value written there.
type Entry struct {
	Key   string
	Value any
}

// ownHashKeys is the highest key of Doc.Hash's own normal form.
const ownHashKeys = 6

var sections struct {
	mu   sync.Mutex
	list []Section
}

// RegisterSection adds s to the sections every document may have. It panics
// if s is incomplete or its name or hash key is taken: both are fixed by the
// file format, so a clash is a programming error.
func RegisterSection(s Section) {
	if s.HashKey == importHashKey {
		panic(fmt.Sprintf("genesis: section %q: hash key %d is state_import's", s.Name, importHashKey))
	}
	if s.Name == "" || s.New == nil || s.HashKey <= ownHashKeys {
		panic(fmt.Sprintf("genesis: section %q needs a name, New and a hash key above %d", s.Name, ownHashKeys))
	}
	if t := reflect.TypeOf(s.New()); t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("genesis: section %q: New must return a pointer to a struct, got %v", s.Name, t))
	}
	if _, taken := jsonFields(reflect.TypeFor[Doc]())[s.Name]; taken {
		panic(fmt.Sprintf("genesis: section %q is a field of the document", s.Name))
	}
	sections.mu.Lock()
	defer sections.mu.Unlock()
	for _, o := range sections.list {
		if o.Name == s.Name || o.HashKey == s.HashKey {
			panic(fmt.Sprintf("genesis: section %q (hash key %d) clashes with section %q (hash key %d)",
				s.Name, s.HashKey, o.Name, o.HashKey))
		}
	}
	sections.list = append(sections.list, s)
}

// Sections returns the registered sections, in the order they were registered.
func Sections() []Section {
	sections.mu.Lock()
	defer sections.mu.Unlock()
	return append([]Section(nil), sections.list...)
}

// Section returns d's value of the named section, or nil if d has none.
func (d *Doc) Section(name string) Part { return d.parts[name] }

// SetSection sets d's value of the named section; nil removes it. It panics
// if no such section is registered or p is not of the type its New returns.
func (d *Doc) SetSection(name string, p Part) {
	sec, ok := section(name)
	if !ok {
		panic(fmt.Sprintf("genesis: no section %q is registered", name))
	}
	if p == nil {
		delete(d.parts, name)
		return
	}
	v := reflect.ValueOf(p)
	if want := reflect.TypeOf(sec.New()); v.Type() != want {
		panic(fmt.Sprintf("genesis: section %q holds %v, got %T", name, want, p))
	}
	if v.IsNil() {
		delete(d.parts, name)
		return
	}
	if d.parts == nil {
		d.parts = map[string]Part{}
	}
	d.parts[name] = p
}

func section(name string) (Section, bool) {
	for _, s := range Sections() {
		if s.Name == name {
			return s, true
		}
	}
	return Section{}, false
}

// jsonForm is the Go type of the JSON document: Doc's exported fields, then one
// optional field per registered section, in the order they were registered.
type jsonForm struct {
	typ      reflect.Type
	own      []int // Doc's field index of each of typ's first fields
	sections []Section
}

func newJSONForm() *jsonForm {
	f := &jsonForm{sections: Sections()}
	var fields []reflect.StructField
	dt := reflect.TypeFor[Doc]()
	for i := range dt.NumField() {
		if sf := dt.Field(i); sf.IsExported() {
			fields = append(fields, reflect.StructField{Name: sf.Name, Type: sf.Type, Tag: sf.Tag})
			f.own = append(f.own, i)
		}
	}
	for i, s := range f.sections {
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("Section%d", i),
			Type: reflect.TypeOf(s.New()),
			Tag:  reflect.StructTag(fmt.Sprintf(`json:"%s,omitempty"`, s.Name)),
		})
	}
	f.typ = reflect.StructOf(fields)
	return f
}

// value returns d in the JSON form, as a pointer.
func (f *jsonForm) value(d *Doc) reflect.Value {
	v := reflect.New(f.typ)
	dv := reflect.ValueOf(d).Elem()
	for i, di := range f.own {
		v.Elem().Field(i).Set(dv.Field(di))
	}
	for i, s := range f.sections {
		if p := d.parts[s.Name]; p != nil {
			v.Elem().Field(len(f.own) + i).Set(reflect.ValueOf(p))
		}
	}
	return v
}

// doc copies the JSON form v (a pointer) into d.
func (f *jsonForm) doc(v reflect.Value, d *Doc) {
	dv := reflect.ValueOf(d).Elem()
	for i, di := range f.own {
		dv.Field(di).Set(v.Elem().Field(i))
	}
	d.parts = nil
	for i, s := range f.sections {
		if fv := v.Elem().Field(len(f.own) + i); !fv.IsNil() {
			d.SetSection(s.Name, fv.Interface().(Part))
		}
	}
}

// MarshalJSON writes d with its sections, in the form Parse reads.
func (d Doc) MarshalJSON() ([]byte, error) {
	return json.Marshal(newJSONForm().value(&d).Interface())
}

// UnmarshalJSON reads d and its sections strictly (unknown fields are errors),
// without the located errors of Parse.
func (d *Doc) UnmarshalJSON(b []byte) error {
	f := newJSONForm()
	v := reflect.New(f.typ)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	f.doc(v, d)
	return nil
}
