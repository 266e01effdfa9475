package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
)

var jsonMarshal = json.Marshal

// MarshalJSON writes only the fields of e's kind: a block event never shows a
// code, a tx event always does (0 is ok), with its name as "status".
func (e Event) MarshalJSON() ([]byte, error) {
	switch e.Kind {
	case KindBlock:
		return json.Marshal(struct {
			Kind   string    `json:"kind"`
			Height uint64    `json:"height"`
			Hash   hash.Hash `json:"hash"`
			Txs    int       `json:"txs"`
			Time   int64     `json:"time"`
		}{e.Kind, e.Height, e.Hash, e.Txs, e.Time})
	case KindTx:
		return json.Marshal(struct {
			Kind   string    `json:"kind"`
			ID     hash.Hash `json:"id"`
			Height uint64    `json:"height"`
			Index  uint32    `json:"index"`
			Code   exec.Code `json:"code"`
			Status string    `json:"status"`
			Error  string    `json:"error,omitempty"`
		}{e.Kind, e.ID, e.Height, e.Index, e.Code, e.Code.String(), e.Error})
	}
	type plain Event
	return json.Marshal(plain(e))
}

// handleEvents: GET /v1/events[?kinds=block,tx] — a text/event-stream of
// committed blocks and transaction results, one "event: <kind>" / "data: <JSON>"
// pair per event, with a ": heartbeat" comment when idle. It ends when the client
// leaves, the backend closes the subscription or the server shuts down.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	want := map[string]bool{KindBlock: true, KindTx: true}
	if v := r.URL.Query().Get("kinds"); v != "" {
		want = map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if k != KindBlock && k != KindTx {
				s.fail(w, r, invalid("kinds=%q: want block, tx or both", v))
				return
			}
			want[k] = true
		}
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	events, cancel := s.b.Subscribe()
	defer cancel()
	if s.metrics != nil {
		s.metrics.EventStreams.Inc()
		defer s.metrics.EventStreams.Dec()
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // tell reverse proxies not to buffer
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 3000\n: connected\n\n"); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}

	beat := time.NewTicker(s.heartbeat)
	defer beat.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-beat.C:
			_, err = fmt.Fprint(w, ": heartbeat\n\n")
		case ev, ok := <-events:
			if !ok {
				return
			}
			if !want[ev.Kind] {
				continue
			}
			data, merr := json.Marshal(ev)
			if merr != nil {
				s.log.Error("encode event", "err", merr.Error())
				continue
			}
			_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Kind, data)
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return // the client is gone
		}
	}
}
