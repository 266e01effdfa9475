package mapreduce

import (
	"sort"

	"github.com/dop251/goja"
)

// txObject presents a decoded JSON object to the script lazily: a field is
// converted when the script reads it (map reads a few fields of a large
// document), and its keys enumerate sorted, so for-in, Object.keys and
// JSON.stringify give the same order every run (a plain wrapped Go map
// enumerates in Go's random map order).
type txObject struct {
	rt   *goja.Runtime
	data map[string]any
	// vals are the fields converted or set so far.
	vals map[string]goja.Value
	keys []string // sorted, made on first use
}

func newTxObject(rt *goja.Runtime, data map[string]any) *goja.Object {
	return rt.NewDynamicObject(&txObject{rt: rt, data: data})
}

// toJS converts a decoded JSON value: objects lazily, arrays eagerly (they are
// short in a transaction: signers, proofs).
func toJS(rt *goja.Runtime, v any) goja.Value {
	switch x := v.(type) {
	case map[string]any:
		return newTxObject(rt, x)
	case []any:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = toJS(rt, e)
		}
		return rt.NewArray(items...)
	case nil:
		return goja.Null()
	}
	return rt.ToValue(v)
}

func (o *txObject) Get(key string) goja.Value {
	if v, ok := o.vals[key]; ok {
		return v
	}
	raw, ok := o.data[key]
	if !ok {
		return nil
	}
	v := toJS(o.rt, raw)
	if o.vals == nil {
		o.vals = map[string]goja.Value{}
	}
	o.vals[key] = v
	return v
}

func (o *txObject) Set(key string, val goja.Value) bool {
	if _, ok := o.data[key]; !ok {
		o.data[key], o.keys = nil, nil
	}
	if o.vals == nil {
		o.vals = map[string]goja.Value{}
	}
	o.vals[key] = val
	return true
}

func (o *txObject) Has(key string) bool {
	_, ok := o.data[key]
	return ok
}

func (o *txObject) Delete(key string) bool {
	if _, ok := o.data[key]; ok {
		delete(o.data, key)
		delete(o.vals, key)
		o.keys = nil
	}
	return true
}

func (o *txObject) Keys() []string {
	if o.keys == nil {
		o.keys = make([]string, 0, len(o.data))
		for k := range o.data {
			o.keys = append(o.keys, k)
		}
		sort.Strings(o.keys)
	}
	return append([]string(nil), o.keys...)
}
