package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/spv"
)

// PathStatus is one light client: Dest's client of Source.
type PathStatus struct {
	Source       string `json:"source"`
	Dest         string `json:"dest"`
	SourceHeight uint64 `json:"source_height"`
	ClientHeight uint64 `json:"client_height"`
	// Lag is SourceHeight - ClientHeight.
	Lag    int64  `json:"lag"`
	Exists bool   `json:"exists"`
	Error  string `json:"error,omitempty"`
}

// XTxStatus is a known, unfinished XTx.
type XTxStatus struct {
	ID          string `json:"id"`
	Coordinator string `json:"coordinator"`
	// Phase is the XTx's lifecycle status: pending, prepared, committed or
	// aborted (the last two while its legs finish).
	Phase    crosschain.Status `json:"phase"`
	Legs     int               `json:"legs"`
	Finished int               `json:"finished"`
}

// StatusReport is what `plug relay status` prints.
type StatusReport struct {
	Name  string       `json:"name"`
	Paths []PathStatus `json:"paths"`
	// Pending is the number of unfinished XTxs; -1 when the db could not be read.
	Pending int         `json:"pending"`
	XTxs    []XTxStatus `json:"xtxs,omitempty"`
	// Source says where the XTx view came from: "daemon" or "db".
	Source string `json:"source"`
}

// serveStatus answers GET /status with the running daemon's report.
func (r *Relay) serveStatus(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	r.mu.Lock()
	xs := pendingList(r.xtxs)
	r.mu.Unlock()
	rep := &StatusReport{Name: r.cfg.Name, Paths: pathStatus(ctx, r.cfg), Pending: len(xs), XTxs: xs, Source: "daemon"}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

// pendingList lists the unfinished XTxs, oldest first.
func pendingList(m map[hash.Hash]*xtxRecord) []XTxStatus {
	type item struct {
		s XTxStatus
		t int64
	}
	var items []item
	for id, x := range m {
		if x.Final {
			continue
		}
		n := 0
		for _, d := range x.Done {
			if d {
				n++
			}
		}
		items = append(items, item{XTxStatus{ID: id.String(), Coordinator: x.Signed.XTx.Coordinator, Phase: x.Status,
			Legs: len(x.Signed.XTx.Legs), Finished: n}, x.Learned})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].t < items[j].t })
	out := make([]XTxStatus, len(items))
	for i, it := range items {
		out[i] = it.s
	}
	return out
}

// Status reports the relay of cfg: every path's light-client height against its
// source chain, read from the chains, and the pending XTxs — from the running
// daemon's /status when it answers, else from its db.
func Status(ctx context.Context, cfg *Config) (*StatusReport, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.MetricsListen != "" {
		hc := &http.Client{Timeout: 10 * time.Second}
		if resp, err := hc.Get("http://" + cfg.MetricsListen + "/status"); err == nil {
			defer resp.Body.Close()
			var rep StatusReport
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&rep) == nil {
				return &rep, nil
			}
		}
	}
	rep := &StatusReport{Name: cfg.Name, Paths: pathStatus(ctx, cfg), Pending: -1, Source: "db"}
	d, err := openDB(cfg.DB, true)
	if err != nil {
		return rep, nil
	}
	defer d.Close()
	xs, err := d.xtxs()
	if err != nil {
		return rep, nil
	}
	rep.XTxs = pendingList(xs)
	rep.Pending = len(rep.XTxs)
	return rep, nil
}

// pathStatus reads every path's light client and source height.
func pathStatus(ctx context.Context, cfg *Config) []PathStatus {
	clients := map[string]*client.Client{}
	heights := map[string]uint64{}
	errs := map[string]error{}
	for _, ch := range cfg.Chains {
		c, err := client.New(ch.Endpoints, client.WithChainID(ch.ID))
		if err == nil {
			s, serr := c.Status(ctx)
			if serr == nil {
				heights[ch.ID] = s.Height
			}
			err = serr
		}
		clients[ch.ID], errs[ch.ID] = c, err
	}
	var out []PathStatus
	for _, p := range cfg.Paths {
		ps := PathStatus{Source: p.Source, Dest: p.Dest, SourceHeight: heights[p.Source]}
		switch {
		case errs[p.Source] != nil:
			ps.Error = fmt.Sprintf("%s: %v", p.Source, errs[p.Source])
		case errs[p.Dest] != nil:
			ps.Error = fmt.Sprintf("%s: %v", p.Dest, errs[p.Dest])
		default:
			res, err := clients[p.Dest].State(ctx, 0, crosschain.LCKey(p.Source), false)
			if err != nil {
				ps.Error = err.Error()
				break
			}
			var c spv.ClientState
			if err := res.Decode(&c); err != nil {
				ps.Error = err.Error()
				break
			}
			ps.Exists, ps.ClientHeight = res.Found, c.Height
			ps.Lag = int64(ps.SourceHeight) - int64(c.Height)
		}
		out = append(out, ps)
	}
	return out
}
