package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/mapreduce"
)

// Query runs a map-reduce query on the node (POST /v1/query). A query's
// fault is an *APIError with code query_syntax, query_no_map, query_limit or
// query_runtime; its message names the line and column, or the limit.
func (c *Client) Query(ctx context.Context, req *gateway.QueryRequest) (*gateway.QueryResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	// The node bounds the query's time; wait for that, not the client's timeout.
	wait := mapreduce.DefaultTimeout
	if req.Limits != nil && req.Limits.TimeoutMS > 0 {
		wait = time.Duration(req.Limits.TimeoutMS) * time.Millisecond
	}
	r, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/query", body: body, ctype: "application/json", wait: wait})
	if err != nil {
		return nil, err
	}
	var out gateway.QueryResponse
	if err := decodeJSON(r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
