package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/plugchain/plug/chain/gateway"
)

// WatchBlocks follows the current endpoint's event stream (GET
// /v1/events?kinds=block) and sends the height of every block the node
// commits. The channel closes when the stream ends — the node went away, or
// ctx ended — and the caller reconnects when it wants to. A slow reader loses
// heights rather than stalling the stream: a height says "look again", the
// reader catches up from chain state.
func (c *Client) WatchBlocks(ctx context.Context) (<-chan uint64, error) {
	c.mu.Lock()
	ep := c.endpoints[c.current]
	c.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/v1/events?kinds=block", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, ep, err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		return nil, fmt.Errorf("%w: %s answered %s to the event stream", ErrUnavailable, ep, res.Status)
	}
	out := make(chan uint64, 16)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue // event names, comments and heartbeats
			}
			var ev gateway.Event
			if json.Unmarshal([]byte(data), &ev) != nil || ev.Kind != gateway.KindBlock {
				continue
			}
			select {
			case out <- ev.Height:
			default:
			}
		}
	}()
	return out, nil
}
