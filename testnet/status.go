package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/plugchain/plug/relay"
)

// Report is the status of a testnet: what `plug testnet status --output json` prints.
type Report struct {
	Dir    string        `json:"dir"`
	Chains []ChainReport `json:"chains"`
	Relays []RelayReport `json:"relays,omitempty"`
	// Network is the logical network file when the chains are shards.
	Network string `json:"network,omitempty"`
}

// RelayReport is the status of one relay process: its light clients and the
// crosschain transactions it has not finished, from its /status.
type RelayReport struct {
	Name    string   `json:"name"`
	Chains  []string `json:"chains"`
	Home    string   `json:"home"`
	Config  string   `json:"config"`
	Metrics string   `json:"metrics"`
	PID     int      `json:"pid"`
	Alive   bool     `json:"alive"`
	// Paths are the light clients it keeps, with their lag.
	Paths []relay.PathStatus `json:"paths,omitempty"`
	// Pending is the number of crosschain transactions not finished on every leg.
	Pending int `json:"pending"`
	// Error says why a running relay did not answer.
	Error string `json:"error,omitempty"`
}

// ChainReport is the status of one chain's nodes.
type ChainReport struct {
	ChainID string       `json:"chain_id"`
	Nodes   []NodeReport `json:"nodes"`
}

// NodeReport is the status of one node. Height and StateRoot come from one
// read of the node's state, so StateRoot is the root after block Height.
type NodeReport struct {
	Name string `json:"name"`
	// Validator: the node votes at its current height (a running node that
	// answers), or was created a validator (otherwise).
	Validator bool   `json:"validator"`
	HTTP      string `json:"http"`
	P2P       string `json:"p2p"`
	Home      string `json:"home"`
	PID       int    `json:"pid"`
	Alive     bool   `json:"alive"`
	Height    uint64 `json:"height"`
	StateRoot string `json:"state_root,omitempty"`
	Peers     int    `json:"peers"`
	// CatchingUp is true while the node syncs blocks it missed.
	CatchingUp bool `json:"catching_up"`
	// Error says why a running node did not answer.
	Error string `json:"error,omitempty"`
}

// Status reads the manifest in dir and asks every running node for its
// height and state root (all at once, a few seconds at most).
func Status(ctx context.Context, dir string) (*Report, error) {
	m, err := LoadManifest(dir)
	if err != nil {
		return nil, err
	}
	r := &Report{Dir: m.Dir, Network: m.Network}
	var wg sync.WaitGroup
	for _, c := range m.Chains {
		cr := ChainReport{ChainID: c.ChainID, Nodes: make([]NodeReport, len(c.Nodes))}
		for i, n := range c.Nodes {
			nr := &cr.Nodes[i]
			*nr = NodeReport{Name: n.Name, Validator: n.Validator, HTTP: n.HTTP, P2P: n.P2P, Home: n.Home, PID: n.PID}
			nr.Alive = alive(n.PID, n.Home)
			if !nr.Alive {
				nr.PID = 0
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				st, err := fetchStatus(ctx, n.HTTP)
				if err != nil {
					nr.Error = err.Error()
					return
				}
				nr.Peers, nr.CatchingUp = st.Peers, st.CatchingUp
				// Power moves at run time: the role is what the node does now.
				nr.Validator = st.Validator
				nr.Height, nr.StateRoot = st.Height, st.StateRoot
				// The status reads height and root apart; a state read gives
				// both from one version.
				if h, root, err := StateRoot(ctx, n.HTTP, 0); err == nil {
					nr.Height, nr.StateRoot = h, root
				}
			}()
		}
		r.Chains = append(r.Chains, cr)
	}
	r.Relays = make([]RelayReport, len(m.Relays))
	for i, rl := range m.Relays {
		rr := &r.Relays[i]
		*rr = RelayReport{Name: rl.Name, Chains: rl.Chains, Home: rl.Home, Config: rl.Config, Metrics: rl.Metrics, PID: rl.PID}
		rr.Alive = alive(rl.PID, rl.Home)
		if !rr.Alive {
			rr.PID = 0
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var st relay.StatusReport
			if err := getJSON(ctx, rl.Metrics+"/status", &st); err != nil {
				rr.Error = err.Error()
				return
			}
			rr.Paths, rr.Pending = st.Paths, st.Pending
		}()
	}
	wg.Wait()
	return r, nil
}

// nodeStatus is the part of GET /v1/status the testnet reads.
type nodeStatus struct {
	Height     uint64 `json:"height"`
	StateRoot  string `json:"state_root"`
	Peers      int    `json:"peers"`
	CatchingUp bool   `json:"catching_up"`
	Validator  bool   `json:"validator"`
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func fetchStatus(ctx context.Context, base string) (*nodeStatus, error) {
	var st nodeStatus
	if err := getJSON(ctx, base+"/v1/status", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// probeKey is a state key no chain uses; reading it yields a height and the
// state root of that height.
const probeKey = "plug-testnet/probe"

// StateRoot asks the node at base for its state root after block height
// (0: the latest), and returns the height read with it.
func StateRoot(ctx context.Context, base string, height uint64) (uint64, string, error) {
	url := base + "/v1/state/" + probeKey
	if height > 0 {
		url += "?height=" + strconv.FormatUint(height, 10)
	}
	var res struct {
		Height    uint64 `json:"height"`
		StateRoot string `json:"state_root"`
	}
	if err := getJSON(ctx, url, &res); err != nil {
		return 0, "", err
	}
	return res.Height, res.StateRoot, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("GET %s: %s (%s)", url, e.Error, resp.Status)
		}
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.Unmarshal(body, v)
}

// WaitCaughtUp polls until the node called name has reached the height the
// other running nodes of its chain were at when it started waiting, and
// reports the same state root as one of them at that height. It returns that
// height. A different state root is an error: the node diverged.
func WaitCaughtUp(ctx context.Context, dir, name string) (uint64, error) {
	m, err := LoadManifest(dir)
	if err != nil {
		return 0, err
	}
	c, n, err := m.Node(name)
	if err != nil {
		return 0, err
	}
	var target uint64
	var ref string
	for {
		if !alive(n.PID, n.Home) {
			return 0, stoppedError(name, n.Home)
		}
		if target == 0 {
			for _, o := range c.Nodes {
				if o.Name == name || !alive(o.PID, o.Home) {
					continue
				}
				if st, err := fetchStatus(ctx, o.HTTP); err == nil && st.Height > target {
					target, ref = st.Height, o.HTTP
				}
			}
		}
		if target > 0 {
			if st, err := fetchStatus(ctx, n.HTTP); err == nil && st.Height >= target {
				_, mine, err1 := StateRoot(ctx, n.HTTP, target)
				_, theirs, err2 := StateRoot(ctx, ref, target)
				if err := errors.Join(err1, err2); err != nil {
					return 0, err
				}
				if mine != theirs {
					return 0, fmt.Errorf("node %s has state root %s at height %d, its peer %s has %s", name, mine, target, ref, theirs)
				}
				return target, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for %s to catch up with height %d: %w", name, target, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
