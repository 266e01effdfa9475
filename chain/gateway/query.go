package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/plugchain/plug/chain/mapreduce"
)

// Error codes of POST /v1/query.
const (
	// CodeQuerySyntax: the script does not parse (400; line and column).
	CodeQuerySyntax = "query_syntax"
	// CodeQueryNoMap: the script defines no function map (400).
	CodeQueryNoMap = "query_no_map"
	// CodeQueryLimit: the query reached a limit, named in limit (422).
	CodeQueryLimit = "query_limit"
	// CodeQueryRuntime: the script threw; error is the exception (422).
	CodeQueryRuntime = "query_runtime"
	// CodeNotImplemented: the node does not run queries (501).
	CodeNotImplemented = "not_implemented"
)

// Querier is the Backend's optional side that runs map-reduce queries (POST
// /v1/query). A Backend without it answers 501.
type Querier interface {
	// Query runs req. A failure that is the query's fault is a
	// *mapreduce.Error; ErrBusy when the node runs as many queries as it
	// allows.
	Query(ctx context.Context, req *QueryRequest) (*QueryResponse, error)
}

// QueryRequest is the body of POST /v1/query.
type QueryRequest struct {
	// Script is JavaScript that defines function map(tx, emit) and, optionally,
	// function reduce(key, values).
	Script string `json:"script"`
	// From, To, Type, Account and Asset narrow the transactions fed to map.
	mapreduce.Filter
	Limits *QueryLimits `json:"limits,omitempty"`
}

// QueryLimits are the limits a client asks for; the node lowers them to its own.
type QueryLimits struct {
	TimeoutMS      int64 `json:"timeout_ms,omitempty"`
	MaxTxs         int   `json:"max_txs,omitempty"`
	MaxEmits       int   `json:"max_emits,omitempty"`
	MaxOutputBytes int   `json:"max_output_bytes,omitempty"`
	MaxStack       int   `json:"max_stack,omitempty"`
	MaxLogs        int   `json:"max_logs,omitempty"`
}

// Limits converts l (nil: all defaults).
func (l *QueryLimits) Limits() mapreduce.Limits {
	if l == nil {
		return mapreduce.Limits{}
	}
	return mapreduce.Limits{Timeout: time.Duration(l.TimeoutMS) * time.Millisecond, MaxTxs: l.MaxTxs,
		MaxEmits: l.MaxEmits, MaxOutputBytes: l.MaxOutputBytes, MaxStack: l.MaxStack, MaxLogs: l.MaxLogs}
}

// QueryResponse answers POST /v1/query: the results keyed and sorted by key,
// the stats, the console.log lines, and the heights read.
type QueryResponse struct {
	mapreduce.Result
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// QueryErrorBody is the error body of POST /v1/query for a query's fault.
type QueryErrorBody struct {
	ErrorBody
	Limit  string `json:"limit,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// handleQuery: POST /v1/query.
func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request) {
	q, ok := s.b.(Querier)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, ErrorBody{Error: "this node does not run queries", Code: CodeNotImplemented})
		return
	}
	body, err := s.readBody(w, r, s.maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req QueryRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.fail(w, r, invalid("JSON body: %v (want {\"script\": \"function map(tx, emit) {…}\", \"from\": H, \"to\": H, \"type\": T, \"account\": A, \"asset\": X, \"limits\": {…}})", err))
		return
	}
	if req.Script == "" {
		s.fail(w, r, invalid("\"script\" is missing: it must define function map(tx, emit)"))
		return
	}
	if req.To != 0 && req.From > req.To {
		s.fail(w, r, invalid("from %d is above to %d", req.From, req.To))
		return
	}
	releaseBody(r)
	res, err := q.Query(r.Context(), &req)
	var qe *mapreduce.Error
	if errors.As(err, &qe) {
		status, code := http.StatusUnprocessableEntity, CodeQueryRuntime
		switch qe.Kind {
		case mapreduce.KindSyntax:
			status, code = http.StatusBadRequest, CodeQuerySyntax
		case mapreduce.KindNoMap:
			status, code = http.StatusBadRequest, CodeQueryNoMap
		case mapreduce.KindLimit:
			code = CodeQueryLimit
		}
		writeJSON(w, status, QueryErrorBody{ErrorBody: ErrorBody{Error: qe.Error(), Code: code}, Limit: qe.Limit, Line: qe.Line, Column: qe.Column})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
