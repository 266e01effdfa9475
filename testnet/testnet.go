package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/crosschain/shard"
)

// Accounts are the keys every testnet keyring holds besides the node keys:
// Admin has the admin role (and so issues USD and EUR) on every chain; the
// others are funded users.
var Accounts = []string{Admin, "alice", "bob", "carol"}

// Admin is the name of the admin key.
const Admin = "admin"

// Assets are the assets every chain starts with, issued by the admin role,
// and InitialBalance is what alice, bob and carol hold of each (in the
// asset's smallest unit).
var Assets = []string{"USD", "EUR"}

// InitialBalance of each funded account in each asset.
const InitialBalance = 1_000_000

// ReadyHeight is the height every node reaches before `up --detach` returns.
const ReadyHeight = 2

// Options tune Up, Restart and Wait.
type Options struct {
	// Exe is the plug binary that runs the nodes; empty means this executable.
	Exe string
	// Reset removes an existing testnet in the directory (stopping it first)
	// instead of resuming it.
	Reset bool
	// Progress, if set, is called while Wait polls: how many nodes reached
	// the height, out of how many.
	Progress func(ready, total int)
}

func (o Options) exe() (string, error) {
	if o.Exe != "" {
		return o.Exe, nil
	}
	return os.Executable()
}

// Up creates a testnet for topo in dir and starts it, or, when dir already
// holds a stopped testnet, starts that one again (topo is then ignored). It
// returns once every node process is started and the manifest is written;
// call Wait to know when the chains commit blocks. If ctx ends or a step
// fails, the nodes started so far are stopped.
func Up(ctx context.Context, topo *Topology, dir string, opts Options) (*Manifest, error) {
	exe, err := opts.exe()
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	m, err := prepare(topo, dir, opts)
	if err != nil {
		return nil, err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Nodes first, then the relays that talk to them.
	all := m.procs()
	for _, p := range slices.Concat(all[len(m.Relays):], all[:len(m.Relays)]) {
		if err := ctx.Err(); err != nil {
			stopAll(m)
			return nil, err
		}
		pid, _, err := start(exe, p)
		if err != nil {
			stopAll(m)
			m.Save()
			return nil, err
		}
		*p.pid = pid
	}
	if err := m.Save(); err != nil {
		stopAll(m)
		return nil, err
	}
	return m, nil
}

// prepare returns the manifest of the testnet to start in dir: the stopped
// one there, or a new one built from topo.
func prepare(topo *Topology, dir string, opts Options) (*Manifest, error) {
	old, err := LoadManifest(dir)
	switch {
	case err == nil:
		if opts.Reset {
			if err := Down(dir); err != nil {
				return nil, err
			}
			if err := os.RemoveAll(dir); err != nil {
				return nil, err
			}
			break
		}
		for _, p := range old.procs() {
			if alive(*p.pid, p.home) {
				return nil, fmt.Errorf("the testnet in %s is running (%s, pid %d): see `plug testnet status --dir %s`, or stop it with `plug testnet down --dir %s`",
					dir, p.name, *p.pid, dir, dir)
			}
		}
		old.Dir = dir
		return old, nil
	case !errors.Is(err, ErrNoTestnet):
		return nil, err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%s is not empty and holds no testnet: choose another --dir", dir)
	}
	if topo == nil {
		topo = DefaultTopology(1, 4)
	}
	if err := topo.Normalize(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	m, err := create(topo, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return m, nil
}

// plannedNode is a node of a new testnet before it is written out.
type plannedNode struct {
	Node
	key            crypto.PrivateKey
	peerID         string
	httpPort, p2pP int
}

// create writes a new testnet for topo in dir: the keyring, and each node's
// home with its genesis, key and config.
func create(topo *Topology, dir string) (*Manifest, error) {
	kr, err := keyring.Open(filepath.Join(dir, KeyringDir), keyring.Test, nil)
	if err != nil {
		return nil, err
	}
	var admin crypto.Address
	var funded []crypto.Address
	for _, name := range Accounts {
		info, err := kr.Add(name, crypto.Ed25519)
		if err != nil {
			return nil, err
		}
		if name == Admin {
			admin = info.Address
		} else {
			funded = append(funded, info.Address)
		}
	}
	// Relayer keys are made first: every chain's genesis lists them in its
	// relayer role.
	var relayers []crypto.Address
	for _, r := range topo.Relays {
		info, err := kr.Add(r.Name, crypto.Ed25519)
		if err != nil {
			return nil, err
		}
		relayers = append(relayers, info.Address)
	}
	ports, err := pickPorts(topo.BasePort, topo.ports())
	if err != nil {
		return nil, err
	}
	m := &Manifest{Dir: dir}
	var net *shard.Network
	if topo.Network != "" {
		net = &shard.Network{Name: topo.Network, Assets: Assets}
		for _, spec := range topo.Chains {
			net.Shards = append(net.Shards, shard.Shard{ChainID: spec.ID})
		}
		for _, r := range topo.Relays {
			net.Relays = append(net.Relays, shard.Relay{Name: r.Name, Shards: r.Chains})
		}
		if err := net.Check(); err != nil {
			return nil, err
		}
	}
	k := 0
	for ci, spec := range topo.Chains {
		var planned []*plannedNode
		for i := 1; i <= spec.Validators+spec.FullNodes; i++ {
			full := i > spec.Validators
			idx := i
			if full {
				idx = i - spec.Validators
			}
			name := nodeName(spec.ID, full, idx)
			// Node keys live in the keyring too, so validators can sign
			// stake and power transactions: plug tx stake --from alpha-val-1.
			key, id, err := newNodeKey(kr, name)
			if err != nil {
				return nil, err
			}
			p := &plannedNode{key: key, peerID: id.String(), httpPort: ports[2*k], p2pP: ports[2*k+1]}
			p.Name, p.Validator = name, !full
			p.Home = filepath.Join(dir, spec.ID, name)
			p.HTTP = "http://127.0.0.1:" + strconv.Itoa(p.httpPort)
			p.P2P = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p.p2pP, id)
			planned = append(planned, p)
			k++
		}
		fund := funded
		if net != nil {
			// A shard funds only the accounts it is home to.
			fund = nil
			for _, a := range funded {
				if net.HashShard(a, 0) == spec.ID {
					fund = append(fund, a)
				}
			}
		}
		doc, err := chainGenesis(spec.ID, planned, admin, fund, relayers)
		if err != nil {
			return nil, err
		}
		doc.Accountability = spec.Accountability
		c := Chain{ChainID: spec.ID}
		for _, p := range planned {
			if err := writeHome(p, planned, doc); err != nil {
				return nil, fmt.Errorf("node %s: %w", p.Name, err)
			}
			c.Nodes = append(c.Nodes, p.Node)
		}
		m.Chains = append(m.Chains, c)
		if net != nil {
			net.Shards[ci].Endpoints = c.Endpoints()
		}
	}
	if net != nil {
		m.Network = filepath.Join(dir, NetworkFile)
		if err := net.Save(m.Network); err != nil {
			return nil, err
		}
	}
	for i, spec := range topo.Relays {
		// Relay ports follow the nodes' two ports each.
		r, err := writeRelayHome(m, spec, ports[2*k+i])
		if err != nil {
			return nil, fmt.Errorf("relay %s: %w", spec.Name, err)
		}
		m.Relays = append(m.Relays, *r)
	}
	return m, m.Save()
}

// chainGenesis returns the genesis of a testnet chain: genesis.Default with
// the chain's validators and admin, plus USD and EUR (issuer role admin) with
// InitialBalance for each funded account; the relayers join the relayer role.
func chainGenesis(chainID string, nodes []*plannedNode, admin crypto.Address, funded, relayers []crypto.Address) (*genesis.Doc, error) {
	var vals []crypto.PublicKey
	var names []string
	for _, n := range nodes {
		if n.Validator {
			vals = append(vals, n.key.Public())
			names = append(names, n.Name)
		}
	}
	doc := genesis.Default(chainID, vals, admin)
	for i := range doc.Validators {
		doc.Validators[i].Name = names[i]
	}
	for i := range doc.Roles {
		if doc.Roles[i].Name == app.RelayerRole {
			for _, r := range relayers {
				doc.Roles[i].Members = append(doc.Roles[i].Members, r.String())
			}
		}
	}
	for _, a := range Assets {
		bal := map[string]uint64{}
		for _, f := range funded {
			bal[f.String()] = InitialBalance
		}
		doc.Assets = append(doc.Assets, genesis.Asset{Name: a, Issuer: "admin", Decimals: 2, Balances: bal})
	}
	if err := doc.Validate(app.Registry()); err != nil {
		return nil, fmt.Errorf("genesis of %s: %w", chainID, err)
	}
	return doc, nil
}

// pickPorts returns n TCP ports on 127.0.0.1: base, base+1, ... checked to be
// free, or, when base is 0, ports the system reports free.
func pickPorts(base, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		addr := "127.0.0.1:0"
		if base != 0 {
			addr = "127.0.0.1:" + strconv.Itoa(base+i)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("port %s is taken (%v): pick another base_port, or leave it out for free ports", addr, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Wait polls every node's gateway until each reports at least height and
// has committed a block since Wait began (so a restarted chain is seen to
// make progress), or ctx ends. It fails early, with the end of its log, if a node process dies.
func Wait(ctx context.Context, m *Manifest, height uint64, opts Options) error {
	total := 0
	for _, c := range m.Chains {
		for _, n := range c.Nodes {
			if !n.Added {
				total++
			}
		}
	}
	first := map[string]uint64{} // the height each node first reported
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ready := 0
		var behind []string
		for _, c := range m.Chains {
			for _, n := range c.Nodes {
				if n.Added {
					continue // admitted only while it holds power
				}
				if !alive(n.PID, n.Home) {
					return stoppedError(n.Name, n.Home)
				}
				st, err := fetchStatus(ctx, n.HTTP)
				if err == nil {
					if _, ok := first[n.Name]; !ok {
						first[n.Name] = st.Height
					}
				}
				if err == nil && st.Height >= height && st.Height > first[n.Name] {
					ready++
				} else {
					behind = append(behind, n.Name)
				}
			}
		}
		if opts.Progress != nil {
			opts.Progress(ready, total)
		}
		if ready == total {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for height %d: %w (not there: %v; logs are HOME/%s)", height, ctx.Err(), behind, LogFile)
		case <-tick.C:
		}
	}
}

// stopAll stops every running relay and node of m (SIGTERM, then SIGKILL
// after a grace period) and sets their PIDs to 0. It returns the names of
// those that had to be killed.
func stopAll(m *Manifest) []string {
	var running []proc
	for _, p := range m.procs() {
		if alive(*p.pid, p.home) {
			signalNode(*p.pid, syscall.SIGTERM)
			running = append(running, p)
		} else {
			*p.pid = 0
		}
	}
	var killed []string
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range running {
		if !waitExit(*p.pid, p.home, time.Until(deadline)) {
			signalNode(*p.pid, syscall.SIGKILL)
			waitExit(*p.pid, p.home, 5*time.Second)
			killed = append(killed, p.name)
		}
		*p.pid = 0
	}
	return killed
}

// Down stops every node of the testnet in dir: SIGTERM, a grace period of
// 10 s, then SIGKILL for stragglers. The homes stay, so Up starts it again.
func Down(dir string) error {
	_, err := DownReport(dir)
	return err
}

// DownReport is Down, also returning the names of nodes that had to be killed.
func DownReport(dir string) (killed []string, err error) {
	unlock, err := lockDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			_, err = LoadManifest(dir)
		}
		return nil, err
	}
	defer unlock()
	m, err := LoadManifest(dir)
	if err != nil {
		return nil, err
	}
	killed = stopAll(m)
	return killed, m.Save()
}

// Kill sends SIGKILL to one node or relay, the crash of fault-injection
// tests; its home stays as the crash left it, so Restart brings it back.
func Kill(dir, name string) error {
	return update(dir, name, func(_ *Manifest, p proc) error {
		if !alive(*p.pid, p.home) {
			*p.pid = 0
			return fmt.Errorf("%s is not running", name)
		}
		signalNode(*p.pid, syscall.SIGKILL)
		if !waitExit(*p.pid, p.home, 10*time.Second) {
			return fmt.Errorf("%s (pid %d) did not die after SIGKILL", name, *p.pid)
		}
		*p.pid = 0
		return nil
	})
}

// Restart starts a stopped node or relay again from its home. It does not
// wait for a node to catch up: poll Status for that.
func Restart(dir, name string, opts Options) error {
	exe, err := opts.exe()
	if err != nil {
		return err
	}
	return update(dir, name, func(m *Manifest, p proc) error {
		if alive(*p.pid, p.home) {
			return fmt.Errorf("%s is running (pid %d): kill it first with `plug testnet kill --dir %s %s`", name, *p.pid, m.Dir, name)
		}
		pid, _, err := start(exe, p)
		if err != nil {
			return err
		}
		*p.pid = pid
		return nil
	})
}

// update runs f on the process called name under the directory lock and
// saves the manifest, also when f fails (f may have changed the PID).
func update(dir, name string, f func(*Manifest, proc) error) error {
	if _, err := LoadManifest(dir); err != nil {
		return err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	m, err := LoadManifest(dir)
	if err != nil {
		return err
	}
	p, err := m.proc(name)
	if err != nil {
		return err
	}
	ferr := f(m, p)
	if err := m.Save(); err != nil {
		return errors.Join(ferr, err)
	}
	return ferr
}
