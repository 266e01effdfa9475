// Package mapreduce runs map-reduce queries, written in JavaScript, over
// committed transactions, in a sandbox: an embedded goja runtime with no I/O
// (no require, no file system, no network, no timers), a time budget enforced
// with Runtime.Interrupt, and bounds on the transactions fed, the values
// emitted, the output size, the call stack and the log lines.
//
// A query defines function map(tx, emit) and optionally function
// reduce(key, values). map is called once per transaction the Feed yields;
// emit(key, value) groups value under String(key). Without reduce, a key's
// result is the array of its values (in feed order); with it, the result is
// reduce(key, values). Results are keyed and sorted by key, so the same
// transactions give the same output.
//
// The package knows transactions only as JSON documents from a Feed, so a
// block scan, or a secondary index, can feed it. See docs/queries.md.
package mapreduce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// Filter narrows the transactions a Feed yields, so a query reads only what it
// needs. Zero fields do not filter.
type Filter struct {
	// From and To bound the block heights, inclusive (To 0: the latest).
	From uint64 `json:"from,omitempty"`
	To   uint64 `json:"to,omitempty"`
	// Type is a transform type (asset/transfer).
	Type string `json:"type,omitempty"`
	// Account is a signer's address (hex).
	Account string `json:"account,omitempty"`
	// Asset keeps the transactions whose transform names this asset.
	Asset string `json:"asset,omitempty"`
}

// Feed yields committed transactions, each as a JSON object, in (height,
// index) order, until fn returns an error (which Scan returns) or ctx ends.
type Feed interface {
	Scan(ctx context.Context, f Filter, fn func(tx []byte) error) error
}

// FeedFunc adapts a function to Feed.
type FeedFunc func(ctx context.Context, f Filter, fn func(tx []byte) error) error

// Scan implements Feed.
func (ff FeedFunc) Scan(ctx context.Context, f Filter, fn func(tx []byte) error) error {
	return ff(ctx, f, fn)
}

// Limits bound a query. A zero field takes its default.
type Limits struct {
	// Timeout is the wall-clock budget of the whole query, feed included.
	Timeout time.Duration `json:"timeout,omitempty"`
	// MaxTxs bounds the transactions fed to map.
	MaxTxs int `json:"max_txs,omitempty"`
	// MaxEmits bounds the emit calls.
	MaxEmits int `json:"max_emits,omitempty"`
	// MaxOutputBytes bounds the emitted keys and values (their JSON size, as
	// emitted) and the encoded results.
	MaxOutputBytes int `json:"max_output_bytes,omitempty"`
	// MaxStack bounds the JavaScript call stack depth.
	MaxStack int `json:"max_stack,omitempty"`
	// MaxLogs bounds the console.log lines kept (more are counted, not kept).
	MaxLogs int `json:"max_logs,omitempty"`
}

// Defaults of Limits.
const (
	DefaultTimeout        = 2 * time.Second
	DefaultMaxTxs         = 1_000_000
	DefaultMaxEmits       = 1_000_000
	DefaultMaxOutputBytes = 8 << 20
	DefaultMaxStack       = 256
	DefaultMaxLogs        = 100
	maxLogLine            = 1024
)

// WithDefaults fills in the zero fields.
func (l Limits) WithDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	def(&l.MaxTxs, DefaultMaxTxs)
	def(&l.MaxEmits, DefaultMaxEmits)
	def(&l.MaxOutputBytes, DefaultMaxOutputBytes)
	def(&l.MaxStack, DefaultMaxStack)
	def(&l.MaxLogs, DefaultMaxLogs)
	return l
}

// Cap lowers every field of l above max's to max's (a caller's limits cannot
// exceed the node's).
func (l Limits) Cap(max Limits) Limits {
	l, max = l.WithDefaults(), max.WithDefaults()
	l.Timeout = min(l.Timeout, max.Timeout)
	l.MaxTxs = min(l.MaxTxs, max.MaxTxs)
	l.MaxEmits = min(l.MaxEmits, max.MaxEmits)
	l.MaxOutputBytes = min(l.MaxOutputBytes, max.MaxOutputBytes)
	l.MaxStack = min(l.MaxStack, max.MaxStack)
	l.MaxLogs = min(l.MaxLogs, max.MaxLogs)
	return l
}

// Kind says what went wrong with a query.
type Kind string

// Kinds of Error.
const (
	// KindSyntax: the script does not parse; Line and Column point at it.
	KindSyntax Kind = "syntax"
	// KindNoMap: the script defines no function map.
	KindNoMap Kind = "no_map"
	// KindLimit: a limit was reached; Limit names it.
	KindLimit Kind = "limit"
	// KindRuntime: the script threw; Message is the exception.
	KindRuntime Kind = "runtime"
)

// Names of the limits, in Error.Limit.
const (
	LimitTime   = "timeout"
	LimitTxs    = "max_txs"
	LimitEmits  = "max_emits"
	LimitOutput = "max_output_bytes"
	LimitStack  = "max_stack"
)

// Error is a query's failure that is the query's fault.
type Error struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
	// Limit names the limit reached (KindLimit).
	Limit  string `json:"limit,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

func (e *Error) Error() string {
	switch {
	case e.Kind == KindLimit:
		return fmt.Sprintf("query limit %s reached: %s", e.Limit, e.Message)
	case e.Line > 0:
		return fmt.Sprintf("query %s error at line %d, column %d: %s", e.Kind, e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("query %s error: %s", e.Kind, e.Message)
}

func limitErr(name, format string, args ...any) *Error {
	return &Error{Kind: KindLimit, Limit: name, Message: fmt.Sprintf(format, args...)}
}

// Stats say what a query did.
type Stats struct {
	// TxsScanned counts the transactions fed to map.
	TxsScanned int `json:"txs_scanned"`
	Emits      int `json:"emits"`
	Keys       int `json:"keys"`
	// ElapsedMS is the query's wall-clock time, milliseconds.
	ElapsedMS float64 `json:"elapsed_ms"`
}

// Result is a query's output.
type Result struct {
	// Results maps each key to its reduced value (or its values' array), as
	// JSON; encoding/json writes the keys sorted.
	Results map[string]json.RawMessage `json:"results"`
	Stats   Stats                      `json:"stats"`
	// Logs are the console.log lines, at most Limits.MaxLogs.
	Logs []string `json:"logs,omitempty"`
	// LogsDropped counts the lines past the bound.
	LogsDropped int `json:"logs_dropped,omitempty"`
}

// Compile checks script: it parses, and defines map. It is cheap enough to
// run before taking a query slot.
func Compile(script string) (*goja.Program, error) {
	// Parsed here, not by goja.Compile, which drops the error's position.
	ast, err := parser.ParseFile(nil, "query.js", script, 0)
	if err != nil {
		return nil, syntaxErr(err)
	}
	prg, err := goja.CompileAST(ast, false)
	if err != nil {
		return nil, syntaxErr(err)
	}
	return prg, nil
}

func syntaxErr(err error) *Error {
	out := &Error{Kind: KindSyntax, Message: err.Error()}
	var cse *goja.CompilerSyntaxError
	var pe *parser.Error
	var list parser.ErrorList
	switch {
	case errors.As(err, &cse):
		out.Message = cse.Message
		if cse.File != nil {
			p := cse.File.Position(cse.Offset)
			out.Line, out.Column = p.Line, p.Column
		}
	case errors.As(err, &list) && len(list) > 0:
		out.Line, out.Column, out.Message = list[0].Position.Line, list[0].Position.Column, list[0].Message
	case errors.As(err, &pe):
		out.Line, out.Column, out.Message = pe.Position.Line, pe.Position.Column, pe.Message
	}
	return out
}

// Run runs script's map (and reduce) over what feed yields under filter,
// within limits. A failure that is the query's fault is an *Error; others
// (the feed's, ctx's) are returned as they are.
func Run(ctx context.Context, script string, feed Feed, filter Filter, limits Limits) (*Result, error) {
	start := time.Now()
	limits = limits.WithDefaults()
	prg, err := Compile(script)
	if err != nil {
		return nil, err
	}
	rt := goja.New()
	rt.SetMaxCallStackSize(limits.MaxStack)
	// Deterministic: Math.random is a fixed sequence, Date.now the query's start.
	var seed uint64 = 0x9E3779B97F4A7C15
	rt.SetRandSource(func() float64 {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return float64(seed>>11) / (1 << 53)
	})
	rt.SetTimeSource(func() time.Time { return start })

	q := &query{rt: rt, limits: limits, groups: map[string][]goja.Value{}}
	res := &Result{}
	console := rt.NewObject()
	if err := console.Set("log", func(call goja.FunctionCall) goja.Value {
		if len(res.Logs) >= limits.MaxLogs {
			res.LogsDropped++
			return goja.Undefined()
		}
		parts := make([]string, len(call.Arguments))
		for i, a := range call.Arguments {
			parts[i] = a.String()
		}
		line := strings.Join(parts, " ")
		if len(line) > maxLogLine {
			line = line[:maxLogLine] + "…"
		}
		res.Logs = append(res.Logs, line)
		return goja.Undefined()
	}); err != nil {
		return nil, err
	}
	if err := rt.Set("console", console); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(limits.Timeout, func() {
		q.fail(limitErr(LimitTime, "the query ran longer than %v: it may loop forever, or read too much (narrow it with from/to, type, account or asset)", limits.Timeout))
		cancel()
	})
	defer timer.Stop()
	stop := context.AfterFunc(ctx, func() { rt.Interrupt(ctx.Err()) })
	defer stop()

	if _, err := rt.RunString(fmt.Sprintf(guards, limits.MaxOutputBytes)); err != nil {
		return nil, err
	}
	if _, err := rt.RunProgram(prg); err != nil {
		return nil, q.jsErr(err, ctx)
	}
	mapFn, ok := goja.AssertFunction(rt.Get("map"))
	if !ok {
		return nil, &Error{Kind: KindNoMap, Message: "the script defines no function map(tx, emit)"}
	}
	var reduceFn goja.Callable
	if v := rt.Get("reduce"); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
		if reduceFn, ok = goja.AssertFunction(v); !ok {
			return nil, &Error{Kind: KindRuntime, Message: "reduce is defined but is not a function"}
		}
	}
	q.stringify, _ = goja.AssertFunction(rt.Get("JSON").ToObject(rt).Get("stringify"))
	emit := rt.ToValue(q.emit)

	err = feed.Scan(ctx, filter, func(raw []byte) error {
		if q.stats.TxsScanned >= limits.MaxTxs {
			return limitErr(LimitTxs, "the query would read more than %d transactions: narrow it with from/to, type, account or asset", limits.MaxTxs)
		}
		q.stats.TxsScanned++
		// Decoded by encoding/json and presented lazily (txObject), not by
		// JSON.parse: map pays only for the fields it reads, and goja's
		// JSON.parse is about 3 times slower over the whole query.
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("the feed gave malformed JSON: %w", err)
		}
		_, err := mapFn(goja.Undefined(), newTxObject(rt, doc), emit)
		return err
	})
	if err == nil {
		err = q.failedErr()
	}
	if err != nil {
		return nil, q.jsErr(err, ctx)
	}

	keys := make([]string, 0, len(q.groups))
	for k := range q.groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res.Results = make(map[string]json.RawMessage, len(keys))
	outBytes := 0
	for _, k := range keys {
		vals := q.groups[k]
		var v goja.Value
		if reduceFn != nil {
			args := make([]any, len(vals))
			for i, x := range vals {
				args[i] = x
			}
			if v, err = reduceFn(goja.Undefined(), rt.ToValue(k), rt.NewArray(args...)); err != nil {
				return nil, q.jsErr(err, ctx)
			}
		} else {
			args := make([]any, len(vals))
			for i, x := range vals {
				args[i] = x
			}
			v = rt.NewArray(args...)
		}
		s, err := q.json(v)
		if err != nil {
			return nil, q.jsErr(err, ctx)
		}
		outBytes += len(k) + len(s) + 6
		if outBytes > limits.MaxOutputBytes {
			return nil, limitErr(LimitOutput, "the results exceed %d bytes", limits.MaxOutputBytes)
		}
		res.Results[k] = json.RawMessage(s)
	}
	if err := q.failedErr(); err != nil {
		return nil, err
	}
	q.stats.Keys = len(keys)
	q.stats.ElapsedMS = float64(time.Since(start).Microseconds()) / 1000
	res.Stats = q.stats
	return res, nil
}

// guards bound the builtins that allocate a string of any length in one Go
// call, which Interrupt cannot stop (%d: the output bound).
const guards = `(function () {
  var max = %d;
  ["repeat", "padStart", "padEnd"].forEach(function (name) {
    var orig = String.prototype[name];
    Object.defineProperty(String.prototype, name, {writable: true, configurable: true, value: function (n) {
      var len = name === "repeat" ? this.length * n : n;
      if (len > max) throw new RangeError("String.prototype." + name + ": a result of " + len + " characters is above the query's bound of " + max);
      return orig.apply(this, arguments);
    }});
  });
})();`

type query struct {
	rt        *goja.Runtime
	limits    Limits
	groups    map[string][]goja.Value
	stringify goja.Callable
	stats     Stats
	outBytes  int
	// failed is the limit reached, the first one; the runtime is interrupted
	// with it, so the script cannot catch it.
	failed atomic.Pointer[Error]
}

// fail stops the script with e: the runtime stops at its next instruction,
// and uncatchably (a JavaScript exception could be caught by the script).
func (q *query) fail(e *Error) {
	q.failed.CompareAndSwap(nil, e)
	q.rt.Interrupt(e)
}

func (q *query) failedErr() error {
	if e := q.failed.Load(); e != nil {
		return e
	}
	return nil
}

// emit is the script's emit(key, value).
func (q *query) emit(call goja.FunctionCall) goja.Value {
	if q.failed.Load() != nil {
		return goja.Undefined()
	}
	if q.stats.Emits >= q.limits.MaxEmits {
		q.fail(limitErr(LimitEmits, "the query emitted more than %d values", q.limits.MaxEmits))
		return goja.Undefined()
	}
	q.stats.Emits++
	key := call.Argument(0).String()
	val := call.Argument(1)
	q.outBytes += len(key) + valueSize(q, val)
	if q.outBytes > q.limits.MaxOutputBytes {
		q.fail(limitErr(LimitOutput, "the emitted keys and values exceed %d bytes", q.limits.MaxOutputBytes))
		return goja.Undefined()
	}
	q.groups[key] = append(q.groups[key], val)
	return goja.Undefined()
}

// valueSize is about the JSON size of v: exact for strings, 8 for other
// primitives, the JSON text's length for objects.
func valueSize(q *query, v goja.Value) int {
	switch {
	case v == nil || goja.IsUndefined(v) || goja.IsNull(v):
		return 4
	}
	switch x := v.Export().(type) {
	case string:
		return len(x) + 2
	case int64, float64, bool:
		return 8
	}
	s, err := q.json(v)
	if err != nil {
		return 8
	}
	return len(s)
}

// json is JSON.stringify(v); undefined (and functions) encode as null.
func (q *query) json(v goja.Value) (string, error) {
	out, err := q.stringify(goja.Undefined(), v)
	if err != nil {
		return "", err
	}
	if out == nil || goja.IsUndefined(out) {
		return "null", nil
	}
	return out.String(), nil
}

// jsErr turns what goja returned into an *Error, or the feed's or ctx's error.
func (q *query) jsErr(err error, ctx context.Context) error {
	if e := q.failed.Load(); e != nil {
		return e
	}
	var qe *Error
	if errors.As(err, &qe) {
		return qe
	}
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		return limitErr(LimitStack, "the call stack is deeper than %d frames", q.limits.MaxStack)
	}
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		if e, ok := ie.Value().(error); ok {
			if errors.As(e, &qe) {
				return qe
			}
			return e
		}
		return fmt.Errorf("query interrupted: %v", ie.Value())
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		if ge, ok := ex.Value().Export().(error); ok && errors.As(ge, &qe) {
			return qe
		}
		msg := ex.Value().String()
		out := &Error{Kind: KindRuntime, Message: msg}
		if st := ex.Error(); st != "" {
			out.Message = strings.TrimSpace(st)
		}
		return out
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
