package transform

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Model describes the values stored under a key prefix: their Go type (which fixes
// the encoding), the default a missing key reads as, and an optional schema check.
// Balances, for instance, are a model of uint64 defaulting to 0.
type Model struct {
	// Name identifies the model, e.g. "balance".
	Name string
	// Prefix is the key prefix the model owns, e.g. "balance/".
	Prefix string
	// Default returns the value a missing key reads as; nil means "the zero value".
	Default func() any
	// Validate checks a value before it is stored; nil accepts every value.
	Validate func(v any) error
}

// Models maps key prefixes to models; the longest matching prefix wins.
type Models struct {
	mu     sync.RWMutex
	byName map[string]*Model
	sorted []*Model // by prefix length, longest first
}

// NewModels returns an empty model set.
func NewModels() *Models { return &Models{byName: map[string]*Model{}} }

// Add registers m.
func (ms *Models) Add(m Model) error {
	if m.Name == "" || m.Prefix == "" {
		return fmt.Errorf("add model %q: name and prefix are required", m.Name)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if _, dup := ms.byName[m.Name]; dup {
		return fmt.Errorf("add model %q: already defined", m.Name)
	}
	for _, o := range ms.sorted {
		if o.Prefix == m.Prefix {
			return fmt.Errorf("add model %q: prefix %q already owned by %q", m.Name, m.Prefix, o.Name)
		}
	}
	mm := m
	ms.byName[m.Name] = &mm
	ms.sorted = append(ms.sorted, &mm)
	sort.SliceStable(ms.sorted, func(i, j int) bool { return len(ms.sorted[i].Prefix) > len(ms.sorted[j].Prefix) })
	return nil
}

// MustAdd is Add that panics, for package-level set-up.
func (ms *Models) MustAdd(m Model) {
	if err := ms.Add(m); err != nil {
		panic(err)
	}
}

// Has reports whether a model of that name exists.
func (ms *Models) Has(name string) bool {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	_, ok := ms.byName[name]
	return ok
}

// For returns the model owning key, or nil.
func (ms *Models) For(key string) *Model {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	for _, m := range ms.sorted {
		if strings.HasPrefix(key, m.Prefix) {
			return m
		}
	}
	return nil
}

// SetDefault stores key's model default into dst (a pointer); with no model or no
// default, dst is set to its zero value.
func (ms *Models) SetDefault(key string, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("get %q: destination must be a non-nil pointer, got %T", key, dst)
	}
	el := rv.Elem()
	el.Set(reflect.Zero(el.Type()))
	m := ms.For(key)
	if m == nil || m.Default == nil {
		return nil
	}
	d := reflect.ValueOf(m.Default())
	if !d.Type().AssignableTo(el.Type()) {
		return fmt.Errorf("get %q: model %q default is %s, destination is %s", key, m.Name, d.Type(), el.Type())
	}
	el.Set(d)
	return nil
}

// Check runs key's model schema over v.
func (ms *Models) Check(key string, v any) error {
	m := ms.For(key)
	if m == nil || m.Validate == nil {
		return nil
	}
	if err := m.Validate(v); err != nil {
		return fmt.Errorf("%w: %s (model %q): %v", ErrSchema, key, m.Name, err)
	}
	return nil
}
