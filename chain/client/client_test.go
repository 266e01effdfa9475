package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/node/nodetest"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/tx"
)

func seedKey(t *testing.T, b byte) crypto.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(bytes.Repeat([]byte{b}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const chainID = "clienttest"

// startNode runs a one-validator chain in process with its gateway on
// 127.0.0.1:0 and returns the gateway's URL.
func startNode(t *testing.T, val, admin crypto.PrivateKey) string {
	t.Helper()
	gen := genesis.Default(chainID, []crypto.PublicKey{val.Public()}, admin.Public().Address())
	n, url := nodetest.Start(t, node.Config{Name: "v1", Genesis: gen, Key: val, Validator: true,
		Registry: builtin.Registry(), Models: builtin.Models()})
	nodetest.WaitHeight(t, n, 1)
	return url
}

func transfer(t *testing.T, from crypto.PrivateKey, nonce uint64, to crypto.Address, amount uint64) *tx.Tx {
	t.Helper()
	x, err := tx.New(builtin.Registry(), chainID, &asset.Transfer{Asset: "STAKE", From: from.Public().Address(), To: to, Amount: amount},
		tx.Signer{Key: from.Public(), Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Sign(from); err != nil {
		t.Fatal(err)
	}
	return x
}

// tamperProxy forwards to target, letting edit change decoded CBOR state answers.
func tamperProxy(t *testing.T, target string, edit func(m *stateAnswer)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if strings.HasPrefix(r.URL.Path, "/v1/state/") && res.StatusCode == 200 && res.Header.Get("Content-Type") == "application/cbor" {
			var m stateAnswer
			if err := encoding.Unmarshal(body, &m); err != nil {
				t.Errorf("proxy: %v", err)
			}
			edit(&m)
			body = encoding.MustMarshal(&m)
		}
		if r.URL.Path == "/v1/states" && res.StatusCode == 200 && res.Header.Get("Content-Type") == "application/cbor" {
			// The same edits, on the first key of a batched answer.
			var sr gateway.StatesResponse
			if err := encoding.Unmarshal(body, &sr); err != nil {
				t.Errorf("proxy: %v", err)
			}
			e := &sr.Results[0]
			m := stateAnswer{Key: e.Key, Height: sr.Height, StateRoot: sr.StateRoot, Found: e.Found, Value: e.Value, Proof: e.Proof,
				Header: sr.Header, Certificate: sr.Certificate}
			edit(&m)
			sr.StateRoot, e.Value, e.Proof, sr.Header, sr.Certificate = m.StateRoot, m.Value, m.Proof, m.Header, m.Certificate
			body = encoding.MustMarshal(&sr)
		}
		for k, v := range res.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(res.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientAgainstNode(t *testing.T) {
	val, admin, bob, carol := seedKey(t, 1), seedKey(t, 2), seedKey(t, 3), seedKey(t, 4)
	url := startNode(t, val, admin)
	ctx := context.Background()
	// A dead endpoint first: the client fails over to the live one.
	dead := "http://" + closedAddr(t)
	c, err := client.New([]string{dead, url}, client.WithChainID(chainID))
	if err != nil {
		t.Fatal(err)
	}

	nonce, err := c.Nonce(ctx, admin.Public().Address())
	if err != nil || nonce != 0 {
		t.Fatalf("nonce %d, %v", nonce, err)
	}
	if c.Endpoint() != url {
		t.Fatalf("endpoint %s after failover, want %s", c.Endpoint(), url)
	}
	x := transfer(t, admin, 0, bob.Public().Address(), 250)
	sr, err := c.Submit(ctx, x, true, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sr.Result == nil || sr.Result.Code != exec.OK || sr.Result.Height == 0 {
		t.Fatalf("submit result %+v", sr.Result)
	}
	// Resubmitting the committed transaction finds its result (nonce refusal).
	if again, err := c.Submit(ctx, x, false, 0); err != nil || again.Result == nil || again.Result.Height != sr.Result.Height {
		t.Fatalf("resubmit: %+v %v", again, err)
	}
	res, err := c.TxResult(ctx, sr.ID)
	if err != nil || res.Height != sr.Result.Height || res.Code != exec.OK {
		t.Fatalf("tx result %+v %v", res, err)
	}
	if nonce, err = c.Nonce(ctx, admin.Public().Address()); err != nil || nonce != 1 {
		t.Fatalf("nonce after transfer %d, %v", nonce, err)
	}

	bal, st, err := c.ProvenBalance(ctx, "STAKE", bob.Public().Address(), 0, true)
	if err != nil || bal != 250 || !st.Verified || st.Height < sr.Result.Height {
		t.Fatalf("proven balance %d %+v %v", bal, st, err)
	}
	if b, err := c.Balance(ctx, "STAKE", bob.Public().Address()); err != nil || b != 250 {
		t.Fatalf("balance %d %v", b, err)
	}
	// Non-membership, proven.
	bal, st, err = c.ProvenBalance(ctx, "STAKE", carol.Public().Address(), 0, true)
	if err != nil || bal != 0 || st.Found || !st.Verified {
		t.Fatalf("carol: %d %+v %v", bal, st, err)
	}
	// Past height.
	if _, st, err = c.ProvenBalance(ctx, "STAKE", bob.Public().Address(), sr.Result.Height-1, true); err != nil || st.Found {
		t.Fatalf("bob before the transfer: %+v %v", st, err)
	}

	// Many keys in one request, proven against one header.
	keys := []string{asset.BalanceKey("STAKE", bob.Public().Address()), asset.BalanceKey("STAKE", carol.Public().Address())}
	many, err := c.States(ctx, sr.Result.Height, keys, true)
	if err != nil || len(many) != 2 || !many[0].Found || many[1].Found || !many[0].Verified || !many[1].Verified ||
		many[0].Height != sr.Result.Height || many[1].Header == nil {
		t.Fatalf("states: %+v %v", many, err)
	}
	var got uint64
	if err := many[0].Decode(&got); err != nil || got != 250 {
		t.Fatalf("bob by States: %d %v", got, err)
	}
	if _, err := c.States(ctx, 0, nil, false); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("no keys: %v", err)
	}

	hr, err := c.Header(ctx, 0)
	if err != nil || hr.Header.Height < sr.Result.Height {
		t.Fatalf("latest header %+v %v", hr, err)
	}
	br, err := c.Block(ctx, sr.Result.Height)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, id := range br.TxIDs {
		found = found || id == sr.ID
	}
	if !found {
		t.Fatalf("block %d does not list %s", sr.Result.Height, sr.ID)
	}

	// Errors.
	if _, err := c.TxResult(ctx, hash.Sum("x", []byte("nothing"))); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown tx: %v", err)
	}
	if _, err := c.Header(ctx, 1_000_000); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("future header: %v", err)
	}
	bad := transfer(t, admin, 1, bob.Public().Address(), 1)
	bad.Body.ChainID = "other"
	if _, err := c.Submit(ctx, bad, false, 0); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("wrong chain: %v", err)
	}
	if _, err := client.New([]string{dead}); err != nil {
		t.Fatal(err)
	}
	dc, _ := client.New([]string{dead})
	if _, err := dc.Status(ctx); !errors.Is(err, client.ErrUnavailable) || !client.IsConnError(err) {
		t.Fatalf("dead node: %v", err)
	}

	// Tampered answers are rejected when proven.
	bobKey := asset.BalanceKey("STAKE", bob.Public().Address())
	for name, edit := range map[string]func(m *stateAnswer){
		"value": func(m *stateAnswer) { m.Value = encoding.MustMarshal(uint64(1_000_000)) },
		"value and roots": func(m *stateAnswer) {
			// A self-consistent lie: value, state root and header root all changed.
			m.Value = encoding.MustMarshal(uint64(1_000_000))
			m.StateRoot = fold(t, m.Proof, bobKey, m.Value)
			m.Header.StateRoot = m.StateRoot
		},
		"proof": func(m *stateAnswer) {
			if len(m.Proof.Siblings) > 0 {
				m.Proof.Siblings[0][0] ^= 1
			}
		},
		"certificate": func(m *stateAnswer) { m.Certificate.BlockID[0] ^= 1 },
		"header":      func(m *stateAnswer) { m.Header.Time++ },
		"no proof":    func(m *stateAnswer) { m.Proof = nil },
		"no header":   func(m *stateAnswer) { m.Header, m.Certificate = nil, nil; m.StateRoot[0] ^= 1 },
	} {
		t.Run(name, func(t *testing.T) {
			tc, _ := client.New([]string{tamperProxy(t, url, edit)})
			_, _, err := tc.ProvenBalance(ctx, "STAKE", bob.Public().Address(), 0, true)
			if !errors.Is(err, client.ErrProof) {
				t.Fatalf("tampered %s accepted: %v", name, err)
			}
			if _, err := tc.States(ctx, 0, []string{bobKey, "config/name"}, true); !errors.Is(err, client.ErrProof) {
				t.Fatalf("tampered %s accepted by States: %v", name, err)
			}
		})
	}
	// Without --prove the client cannot tell: that is what proofs are for.
	tc, _ := client.New([]string{tamperProxy(t, url, func(m *stateAnswer) {
		m.Value = encoding.MustMarshal(uint64(1_000_000))
	})})
	if v, err := tc.Balance(ctx, "STAKE", bob.Public().Address()); err != nil || v != 1_000_000 {
		t.Fatalf("unproven tampered read: %d %v", v, err)
	}
}

// stateAnswer mirrors the gateway's CBOR answer to GET /v1/state/{key}.
type stateAnswer struct {
	Key         string                 `cbor:"1,keyasint"`
	Height      uint64                 `cbor:"2,keyasint"`
	StateRoot   hash.Hash              `cbor:"3,keyasint"`
	Found       bool                   `cbor:"4,keyasint"`
	Value       []byte                 `cbor:"5,keyasint,omitempty"`
	Proof       *proof.StateProof      `cbor:"6,keyasint,omitempty"`
	Header      *block.Header          `cbor:"7,keyasint,omitempty"`
	Certificate *consensus.Certificate `cbor:"8,keyasint,omitempty"`
}

// fold recomputes the root a membership proof leads to for key = value.
func fold(t *testing.T, p *proof.StateProof, key string, value []byte) hash.Hash {
	path := proof.KeyPath(key)
	h := proof.LeafHash(path, proof.ValueHash(value))
	n := len(p.Siblings)
	for i := int(p.Depth) - 1; i >= 0; i-- {
		var sib hash.Hash
		if p.Present[i>>3]>>(7-uint(i&7))&1 == 1 {
			n--
			sib = p.Siblings[n]
		}
		if path.Bit(i) == 0 {
			h = proof.NodeHash(h, sib)
		} else {
			h = proof.NodeHash(sib, h)
		}
	}
	if err := p.VerifyMembership(h, key, value); err != nil {
		t.Fatalf("fold: %v", err)
	}
	return h
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestBusyIsRetriedThenReported(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"node busy: mempool full","code":"busy"}`)
	}))
	defer srv.Close()
	c, _ := client.New([]string{srv.URL}, client.WithBusyRetries(1))
	_, err := c.Submit(context.Background(), transfer(t, seedKey(t, 2), 0, crypto.Address{1}, 1), false, 0)
	var be *client.BusyError
	if !errors.Is(err, client.ErrBusy) || !errors.As(err, &be) || be.RetryAfter != time.Second || calls != 2 {
		t.Fatalf("busy: %v (%d calls)", err, calls)
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":           "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/":   "http://127.0.0.1:8080",
		"https://node.example:443": "https://node.example:443",
	} {
		if got, err := client.NormalizeEndpoint(in); err != nil || got != want {
			t.Errorf("%s: %s %v", in, got, err)
		}
	}
	for _, bad := range []string{"ftp://x", "http://", ""} {
		if _, err := client.NormalizeEndpoint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	_ = url.URL{}
}

// TestWatchBlocks: the block stream sends committed heights in order and
// closes when its context ends.
func TestWatchBlocks(t *testing.T) {
	url := startNode(t, seedKey(t, 1), seedKey(t, 2))
	c, err := client.New([]string{url})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	heights, err := c.WatchBlocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 2 {
		select {
		case h := <-heights:
			if h <= last {
				t.Fatalf("height %d after %d", h, last)
			}
			last = h
		case <-time.After(10 * time.Second):
			t.Fatal("no block event in 10 s")
		}
	}
	cancel()
	for range heights { // drains, then closes
	}
	dead, _ := client.New([]string{"http://" + closedAddr(t)})
	if _, err := dead.WatchBlocks(context.Background()); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("dead node: %v", err)
	}
}

// forward passes r on to target and its answer back, without the header drop.
func forward(w http.ResponseWriter, r *http.Request, target, drop string) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
	req.Header = r.Header.Clone()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	for k, v := range res.Header {
		if k != drop {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(res.StatusCode)
	io.Copy(w, res.Body)
}

// TestWrongChainRefused: a client for chain "other" refuses every answer of a
// node of another chain — reads included, where nothing else would tell — and
// also when a proxy strips the header that names the chain.
func TestWrongChainRefused(t *testing.T) {
	url := startNode(t, seedKey(t, 1), seedKey(t, 2))
	ctx := context.Background()
	strip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forward(w, r, url, gateway.ChainIDHeader)
	}))
	defer strip.Close()
	for name, ep := range map[string]string{"direct": url, "header stripped": strip.URL} {
		t.Run(name, func(t *testing.T) {
			c, _ := client.New([]string{ep}, client.WithChainID("other"))
			if _, err := c.Balance(ctx, "STAKE", seedKey(t, 2).Public().Address()); !errors.Is(err, client.ErrWrongChain) {
				t.Fatalf("balance from the wrong chain: %v", err)
			}
			if _, err := c.Status(ctx); !errors.Is(err, client.ErrWrongChain) || !strings.Contains(err.Error(), `serves chain "clienttest", not "other"`) {
				t.Fatalf("status of the wrong chain: %v", err)
			}
			ok, _ := client.New([]string{ep}, client.WithChainID(chainID))
			if _, err := ok.Balance(ctx, "STAKE", seedKey(t, 2).Public().Address()); err != nil {
				t.Fatalf("right chain: %v", err)
			}
		})
	}
}

// TestPendingLostAndDropped: a transaction behind a nonce gap is pending and says
// what it waits for; one a node "admitted" and lost is sent again by Await and
// commits once; one whose nonce another transaction used is reported dropped,
// and only Renew, on the caller's request, signs it again.
func TestPendingLostAndDropped(t *testing.T) {
	val, admin, bob := seedKey(t, 1), seedKey(t, 2), seedKey(t, 3)
	url := startNode(t, val, admin)
	ctx := context.Background()
	c, _ := client.New([]string{url}, client.WithChainID(chainID))
	a := admin.Public().Address()

	// Nonce 1 before nonce 0: pending, waiting for 0.
	second := transfer(t, admin, 1, bob.Public().Address(), 2)
	if _, err := c.Submit(ctx, second, false, 0); err != nil {
		t.Fatal(err)
	}
	id2, _ := second.ID()
	_, err := c.TxResult(ctx, id2)
	var pe *client.PendingError
	if !errors.As(err, &pe) || !errors.Is(err, client.ErrNotFound) || pe.Status.WaitingFor == nil || *pe.Status.WaitingFor != 0 {
		t.Fatalf("gapped transaction: %v", err)
	}
	if n, err := c.Nonces(ctx, a); err != nil || n.Committed != 0 || n.Next != 0 || n.Pending != 1 {
		t.Fatalf("nonces with a gap: %+v %v", n, err)
	}

	// A node that answers "pending" and forgets: Await sends the same bytes again.
	posts := 0
	forgetful := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/tx" {
			posts++
			if posts == 1 {
				body, _ := io.ReadAll(r.Body)
				x, _ := tx.Decode(body)
				id, _ := x.ID()
				w.Header().Set(gateway.ChainIDHeader, chainID)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusAccepted)
				io.WriteString(w, `{"id":"`+id.String()+`","status":"pending"}`)
				return
			}
		}
		forward(w, r, url, "")
	}))
	defer forgetful.Close()
	fc, _ := client.New([]string{forgetful.URL}, client.WithChainID(chainID))
	first := transfer(t, admin, 0, bob.Public().Address(), 1)
	if sr, err := fc.Submit(ctx, first, false, 0); err != nil || sr.Result != nil {
		t.Fatalf("submit to the forgetful node: %+v %v", sr, err)
	}
	res, err := fc.Await(ctx, first, 20*time.Second)
	if err != nil || res.Code != exec.OK || posts < 2 {
		t.Fatalf("await a lost transaction: %+v %v (%d posts)", res, err, posts)
	}
	if res, err := c.Await(ctx, second, 20*time.Second); err != nil || res.Code != exec.OK {
		t.Fatalf("the gapped transaction after the gap filled: %+v %v", res, err)
	}

	// Another transaction with nonce 0: its nonce is used, it is dropped.
	loser := transfer(t, admin, 0, bob.Public().Address(), 99)
	_, err = c.Await(ctx, loser, 5*time.Second)
	var de *client.DroppedError
	if !errors.As(err, &de) || !errors.Is(err, client.ErrDropped) || de.Status.Nonce != 0 || *de.Status.Signer != a {
		t.Fatalf("await a transaction whose nonce was used: %v", err)
	}
	if _, err := c.Submit(ctx, loser, false, 0); !errors.Is(err, client.ErrNonceConflict) || !strings.Contains(err.Error(), "stale nonce") {
		t.Fatalf("submit the dropped transaction: %v", err)
	}
	renewed, err := c.Renew(ctx, loser, admin)
	if err != nil || renewed.Body.Signers[0].Nonce != 2 || string(renewed.Body.Payload) != string(loser.Body.Payload) {
		t.Fatalf("renew: %+v %v", renewed, err)
	}
	if res, err := c.Submit(ctx, renewed, true, 15*time.Second); err != nil || res.Result == nil || res.Result.Code != exec.OK {
		t.Fatalf("renewed: %+v %v", res, err)
	}
	if bal, err := c.Balance(ctx, "STAKE", bob.Public().Address()); err != nil || bal != 1+2+99 {
		t.Fatalf("bob got %d (%v), want each transfer once: 102", bal, err)
	}
}
