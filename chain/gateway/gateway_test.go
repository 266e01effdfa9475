package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/tx"
)

const chainID = "test-chain"

// fakeBackend is the gateway's Backend in isolation: a real state tree (so proofs
// are real), a one-block chain and an in-memory "mempool" the test commits by hand.
type fakeBackend struct {
	st *state.Store

	mu        sync.Mutex
	status    gateway.Status
	blocks    map[uint64]*block.Block
	pending   map[hash.Hash]*tx.Tx
	results   map[hash.Hash]*gateway.TxResult
	subs      map[int]chan gateway.Event
	nextSub   int
	busy      bool
	panicking bool
	badProof  bool
	submitted chan hash.Hash
	dropped   map[hash.Hash]*gateway.TxStatus
}

func newFake(t testing.TB) *fakeBackend {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := st.Stage([]state.Change{
		{Key: "balance/USD/alice", Value: encoding.MustMarshal(uint64(100))},
		{Key: "balance/USD/bob", Value: encoding.MustMarshal(uint64(7))},
		{Key: "config/name", Value: encoding.MustMarshal(map[string]any{"name": "plug", "n": 3})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
	blk := &block.Block{Header: block.Header{ChainID: chainID, Height: 1, Time: 1_700_000_000_000, StateRoot: st.Root()}}
	f := &fakeBackend{
		st:        st,
		blocks:    map[uint64]*block.Block{1: blk},
		pending:   map[hash.Hash]*tx.Tx{},
		results:   map[hash.Hash]*gateway.TxResult{},
		subs:      map[int]chan gateway.Event{},
		submitted: make(chan hash.Hash, 100),
		dropped:   map[hash.Hash]*gateway.TxStatus{},
	}
	f.status = gateway.Status{ChainID: chainID, Node: "n0", Height: 1, StateRoot: st.Root(),
		LatestHash: blk.Header.Hash(), Time: blk.Header.Time, Peers: 3, Validator: true, Validators: 4}
	return f
}

func (f *fakeBackend) ChainID() string { return chainID }

func (f *fakeBackend) Status() gateway.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicking {
		panic("status exploded")
	}
	return f.status
}

func (f *fakeBackend) States(height uint64, keys []string, prove bool) ([]*gateway.StateResult, error) {
	out := make([]*gateway.StateResult, len(keys))
	for i, k := range keys {
		res, err := f.State(height, k, prove)
		if err != nil {
			return nil, err
		}
		out[i], height = res, res.Height
	}
	return out, nil
}

func (f *fakeBackend) SubmitBatch(ctx context.Context, txs []*tx.Tx) ([]hash.Hash, []error) {
	ids, errs := make([]hash.Hash, len(txs)), make([]error, len(txs))
	for i, t := range txs {
		ids[i], errs[i] = f.Submit(ctx, t)
	}
	return ids, errs
}

func (f *fakeBackend) Submit(_ context.Context, t *tx.Tx) (hash.Hash, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicking {
		panic("submit exploded")
	}
	if f.busy {
		return hash.Hash{}, fmt.Errorf("%w: mempool full (10000 transactions)", gateway.ErrBusy)
	}
	id, err := t.ID()
	if err != nil {
		return id, err
	}
	if r, ok := f.results[id]; ok {
		return id, fmt.Errorf("%w: transaction %s at height %d", gateway.ErrCommitted, id, r.Height)
	}
	f.pending[id] = t
	select {
	case f.submitted <- id:
	default:
	}
	return id, nil
}

// commit moves a pending transaction into a new block and publishes the events.
func (f *fakeBackend) commit(id hash.Hash, code exec.Code) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.pending[id]
	delete(f.pending, id)
	h := f.status.Height + 1
	blk := &block.Block{Header: block.Header{ChainID: chainID, Height: h, Time: f.status.Time + 1000,
		PrevHash: f.status.LatestHash, StateRoot: f.st.Root()}, Txs: []*tx.Tx{t}}
	f.blocks[h] = blk
	f.status.Height, f.status.LatestHash, f.status.Time = h, blk.Header.Hash(), blk.Header.Time
	res := &gateway.TxResult{ID: id, Height: h, Index: 0, Code: code, Tx: t}
	if code != exec.OK {
		res.Error = "insufficient funds"
	}
	f.results[id] = res
	f.publish(gateway.Event{Kind: gateway.KindTx, ID: id, Height: h, Code: code, Error: res.Error})
	f.publish(gateway.Event{Kind: gateway.KindBlock, Height: h, Hash: blk.Header.Hash(), Txs: 1, Time: blk.Header.Time})
}

func (f *fakeBackend) publish(ev gateway.Event) {
	for _, c := range f.subs {
		select {
		case c <- ev:
		default: // never block on a slow subscriber
		}
	}
}

func (f *fakeBackend) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeBackend) TxResult(_ context.Context, id hash.Hash) (*gateway.TxResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.results[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("%w: transaction %s", gateway.ErrNotFound, id.Short())
}

func (f *fakeBackend) TxStatus(id hash.Hash) (*gateway.TxStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pending[id]; ok {
		return &gateway.TxStatus{ID: id, Status: gateway.TxPending}, nil
	}
	if d, ok := f.dropped[id]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("%w: transaction %s", gateway.ErrNotFound, id.Short())
}

// drop moves a pending transaction to the dropped ones, its nonce used by by.
func (f *fakeBackend) drop(id, by hash.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.pending[id]
	delete(f.pending, id)
	a := t.Body.Signers[0].Key.Address()
	f.dropped[id] = &gateway.TxStatus{ID: id, Status: gateway.TxDropped, Signer: &a, Nonce: t.Body.Signers[0].Nonce, By: by, Height: 9,
		Reason: fmt.Sprintf("nonce %d was used by transaction %s committed at height 9", t.Body.Signers[0].Nonce, by)}
}

func (f *fakeBackend) Nonce(a crypto.Address) (*gateway.NonceInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.pending {
		if t.Body.Signers[0].Key.Address() == a {
			n++
		}
	}
	return &gateway.NonceInfo{Address: a, Committed: 3, Next: 3 + uint64(n), Pending: n}, nil
}

func (f *fakeBackend) Block(h uint64) (*block.Block, *consensus.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.blocks[h]
	if !ok {
		return nil, nil, gateway.ErrNotFound
	}
	return b, cert(b), nil
}

func (f *fakeBackend) Header(h uint64) (*block.Header, *consensus.Certificate, error) {
	b, c, err := f.Block(h)
	if err != nil {
		return nil, nil, err
	}
	hdr := b.Header
	return &hdr, c, nil
}

func cert(b *block.Block) *consensus.Certificate {
	id := b.Header.Hash()
	return &consensus.Certificate{ChainID: chainID, Height: b.Header.Height, BlockID: id, Votes: []consensus.Vote{
		{Type: consensus.Commit, ChainID: chainID, Height: b.Header.Height, BlockID: id, Signature: []byte{1, 2, 3}},
	}}
}

func (f *fakeBackend) State(height uint64, key string, prove bool) (*gateway.StateResult, error) {
	if height == 0 {
		height = f.st.Version()
	}
	if height > f.st.Version() {
		return nil, fmt.Errorf("%w: height %d is not committed", gateway.ErrNotFound, height)
	}
	root, err := f.st.RootAt(height)
	if err != nil {
		return nil, err
	}
	res := &gateway.StateResult{Key: key, Height: height, StateRoot: root}
	if prove {
		res.Value, res.Found, res.Proof, err = f.st.Prove(height, key)
		f.mu.Lock()
		bad := f.badProof
		f.mu.Unlock()
		if bad && res.Proof != nil {
			res.Value = encoding.MustMarshal(uint64(1_000_000)) // lie about the value
		}
	} else {
		res.Value, res.Found, err = f.st.GetAt(height, key)
	}
	return res, err
}

func (f *fakeBackend) Subscribe() (<-chan gateway.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan gateway.Event, 64)
	n := f.nextSub
	f.nextSub++
	f.subs[n] = c
	var once sync.Once
	return c, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, n)
			f.mu.Unlock()
		})
	}
}

func (f *fakeBackend) set(fn func(f *fakeBackend)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

func signedTx(t testing.TB, nonce uint64) *tx.Tx {
	t.Helper()
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	x := &tx.Tx{Body: tx.Body{ChainID: chainID, Type: "asset/transfer",
		Payload: encoding.MustMarshal(map[string]any{"amount": 5}),
		Signers: []tx.Signer{{Key: k.Public(), Nonce: nonce}}}}
	if err := x.Sign(k); err != nil {
		t.Fatal(err)
	}
	return x
}

func encodeTx(t testing.TB, x *tx.Tx) []byte {
	t.Helper()
	b, err := x.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type harness struct {
	f   *fakeBackend
	gw  *gateway.Server
	srv *httptest.Server
}

func setup(t *testing.T, opts ...gateway.Option) *harness {
	t.Helper()
	f := newFake(t)
	gw := gateway.New(f, opts...)
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(func() {
		gw.Close()
		srv.Close()
	})
	return &harness{f: f, gw: gw, srv: srv}
}

// do sends a request and decodes the JSON answer into out (when non-nil). It
// checks that error answers are JSON with an error code.
func (h *harness) do(t *testing.T, method, path, ctype string, body []byte, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode >= 400 {
		var e gateway.ErrorBody
		if err := json.Unmarshal(data, &e); err != nil || e.Error == "" || e.Code == "" {
			t.Fatalf("%s %s: %d answer is not a JSON error: %q", method, path, resp.StatusCode, data)
		}
		if out != nil {
			if eb, ok := out.(*gateway.ErrorBody); ok {
				*eb = e
			}
		}
		return resp
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp
}

func wantStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want)
	}
}

func TestSubmitCBORAndJSON(t *testing.T) {
	h := setup(t)
	x := signedTx(t, 0)
	id, _ := x.ID()
	raw := encodeTx(t, x)

	var got gateway.SubmitResponse
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", raw, &got), http.StatusAccepted)
	if got.ID != id || got.Status != "pending" {
		t.Fatalf("submit: %+v, want id %s pending", got, id)
	}

	y := signedTx(t, 1)
	yid, _ := y.ID()
	body, _ := json.Marshal(map[string]string{"tx": base64.StdEncoding.EncodeToString(encodeTx(t, y))})
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/json", body, &got), http.StatusAccepted)
	if got.ID != yid {
		t.Fatalf("JSON submit: id %s, want %s", got.ID, yid)
	}
	// curl --data-binary without a content type: sniffed.
	z := signedTx(t, 2)
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/x-www-form-urlencoded", encodeTx(t, z), &got), http.StatusAccepted)
	wantStatus(t, h.do(t, "POST", "/v1/tx", "", body, &got), http.StatusAccepted)
}

func TestSubmitRejectsBadInput(t *testing.T) {
	h := setup(t)
	good := encodeTx(t, signedTx(t, 0))
	other := signedTx(t, 0)
	other.Body.ChainID = "other-chain"
	other.Proofs = []tx.Proof{{Signature: make([]byte, 64)}}
	cases := []struct {
		name, ctype string
		body        []byte
	}{
		{"garbage CBOR", "application/cbor", []byte{0xff, 0x00, 0x13}},
		{"truncated CBOR", "application/cbor", good[:len(good)-3]},
		{"trailing bytes", "application/cbor", append(append([]byte{}, good...), 0)},
		{"empty", "application/cbor", nil},
		{"bad JSON", "application/json", []byte(`{"tx": `)},
		{"JSON not base64", "application/json", []byte(`{"tx": "!!!"}`)},
		{"JSON unknown field", "application/json", []byte(`{"tx": "oA==", "x": 1}`)},
		{"JSON missing tx", "application/json", []byte(`{}`)},
		{"JSON trailing", "application/json", []byte(`{"tx": "oA=="} {}`)},
		{"wrong chain", "application/cbor", encodeTx(t, other)},
		{"bad wait", "application/cbor", good},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := "/v1/tx"
			if c.name == "bad wait" {
				path += "?wait=maybe"
			}
			var e gateway.ErrorBody
			wantStatus(t, h.do(t, "POST", path, c.ctype, c.body, &e), http.StatusBadRequest)
			if e.Code != gateway.CodeInvalid {
				t.Fatalf("code %q, want invalid (%s)", e.Code, e.Error)
			}
		})
	}
}

func TestSubmitTooLarge(t *testing.T) {
	h := setup(t)
	// Over the body limit (served in-process: a real client may see the
	// connection close before it has sent all its bytes).
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/tx", bytes.NewReader(make([]byte, 2<<20)))
	req.Header.Set("Content-Type", "application/cbor")
	h.gw.Handler().ServeHTTP(rec, req)
	var e gateway.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); rec.Code != http.StatusRequestEntityTooLarge || err != nil || e.Code != gateway.CodeTooLarge {
		t.Fatalf("2 MiB body: %d %s", rec.Code, rec.Body)
	}
	// Under the body limit but over the transaction limit.
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", make([]byte, tx.MaxTxSize+1), &e), http.StatusRequestEntityTooLarge)

	small := setup(t, gateway.WithMaxBody(100))
	wantStatus(t, small.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, signedTx(t, 0)), &e), http.StatusRequestEntityTooLarge)
}

func TestSubmitBusy(t *testing.T) {
	h := setup(t, gateway.WithRetryAfter(3*time.Second))
	h.f.set(func(f *fakeBackend) { f.busy = true })
	var e gateway.ErrorBody
	resp := h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, signedTx(t, 0)), &e)
	wantStatus(t, resp, http.StatusServiceUnavailable)
	if e.Code != gateway.CodeBusy || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("code %q, Retry-After %q", e.Code, resp.Header.Get("Retry-After"))
	}
}

func TestSubmitWait(t *testing.T) {
	h := setup(t)
	x := signedTx(t, 0)
	id, _ := x.ID()
	go func() {
		<-h.f.submitted
		time.Sleep(50 * time.Millisecond)
		h.f.commit(id, exec.Failed)
	}()
	var got gateway.TxResponse
	wantStatus(t, h.do(t, "POST", "/v1/tx?wait=true&timeout=5s", "application/cbor", encodeTx(t, x), &got), http.StatusOK)
	if got.TxResult == nil || got.ID != id || got.Height != 2 || got.Code != exec.Failed || got.Status != "failed" || got.Error == "" {
		t.Fatalf("waited result: %+v", got)
	}
	if got.Tx == nil || got.Tx.Body.ChainID != chainID {
		t.Fatalf("result lacks the transaction: %+v", got.Tx)
	}

	// Never committed: 202 pending once the timeout passes.
	y := signedTx(t, 1)
	start := time.Now()
	var pend gateway.SubmitResponse
	wantStatus(t, h.do(t, "POST", "/v1/tx?wait=1&timeout=200ms", "application/cbor", encodeTx(t, y), &pend), http.StatusAccepted)
	if pend.Status != "pending" || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("timed-out wait: %+v after %v", pend, time.Since(start))
	}
	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "POST", "/v1/tx?wait=true&timeout=-1s", "application/cbor", encodeTx(t, y), &e), http.StatusBadRequest)
}

func TestGetTx(t *testing.T) {
	h := setup(t)
	x := signedTx(t, 0)
	id, _ := x.ID()
	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "GET", "/v1/tx/"+id.String(), "", nil, &e), http.StatusNotFound)
	if e.Code != gateway.CodeNotFound || !strings.Contains(e.Error, "neither committed nor pending") {
		t.Fatalf("unknown tx: %+v", e)
	}
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, x), nil), http.StatusAccepted)
	var pending gateway.TxStatus
	wantStatus(t, h.do(t, "GET", "/v1/tx/"+id.String(), "", nil, &pending), http.StatusAccepted)
	if pending.ID != id || pending.Status != gateway.TxPending {
		t.Fatalf("pending tx: %+v", pending)
	}
	h.f.commit(id, exec.OK)
	var got gateway.TxResponse
	wantStatus(t, h.do(t, "GET", "/v1/tx/"+id.String(), "", nil, &got), http.StatusOK)
	if got.ID != id || got.Status != "ok" || got.Height != 2 {
		t.Fatalf("tx: %+v", got)
	}
	gotID, err := got.Tx.ID()
	if err != nil || gotID != id {
		t.Fatalf("the JSON transaction does not hash to its id: %v %s", err, gotID)
	}
	wantStatus(t, h.do(t, "GET", "/v1/tx/"+strings.Repeat("ab", 32), "", nil, nil), http.StatusNotFound)
	wantStatus(t, h.do(t, "GET", "/v1/tx/xyz", "", nil, &e), http.StatusBadRequest)
}

// TestDroppedAndResubmitted: a transaction whose nonce another one used answers
// 410 with the reason and the winner; the same committed transaction sent again
// answers its result (200), on POST /v1/tx and as "committed" in POST /v1/txs.
func TestDroppedAndResubmitted(t *testing.T) {
	h := setup(t)
	loser, winner := signedTx(t, 4), signedTx(t, 5)
	lid, _ := loser.ID()
	wid, _ := winner.ID()
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, loser), nil), http.StatusAccepted)
	h.f.drop(lid, wid)
	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "GET", "/v1/tx/"+lid.String(), "", nil, &e), http.StatusGone)
	if e.Code != gateway.CodeDropped || e.Tx == nil || e.Tx.By != wid || e.Tx.Height != 9 || !strings.Contains(e.Error, "used by transaction "+wid.String()) {
		t.Fatalf("dropped tx: %+v (tx %+v)", e, e.Tx)
	}

	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, winner), nil), http.StatusAccepted)
	h.f.commit(wid, exec.OK)
	var res gateway.TxResponse
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, winner), &res), http.StatusOK)
	if res.ID != wid || res.Status != "ok" {
		t.Fatalf("resubmitted committed tx: %+v", res)
	}
	var br gateway.BatchResponse
	body := encoding.MustMarshal([][]byte{encodeTx(t, winner)})
	wantStatus(t, h.do(t, "POST", "/v1/txs", "application/cbor", body, &br), http.StatusOK)
	if len(br.Results) != 1 || br.Results[0].Status != "committed" || br.Results[0].ID != wid {
		t.Fatalf("batch resubmission: %+v", br)
	}
}

// TestNonceAndChainHeader: the next nonce counts pending transactions, and every
// answer, errors included, names the chain.
func TestNonceAndChainHeader(t *testing.T) {
	h := setup(t)
	x := signedTx(t, 3)
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, x), nil), http.StatusAccepted)
	a := x.Body.Signers[0].Key.Address()
	var n gateway.NonceInfo
	resp := h.do(t, "GET", "/v1/accounts/"+a.String()+"/nonce", "", nil, &n)
	wantStatus(t, resp, http.StatusOK)
	if n.Address != a || n.Committed != 3 || n.Next != 4 || n.Pending != 1 {
		t.Fatalf("nonce: %+v", n)
	}
	if got := resp.Header.Get(gateway.ChainIDHeader); got != chainID {
		t.Fatalf("%s: %q", gateway.ChainIDHeader, got)
	}
	var e gateway.ErrorBody
	resp = h.do(t, "GET", "/v1/accounts/xyz/nonce", "", nil, &e)
	wantStatus(t, resp, http.StatusBadRequest)
	if got := resp.Header.Get(gateway.ChainIDHeader); got != chainID {
		t.Fatalf("error answer: %s %q", gateway.ChainIDHeader, got)
	}
	resp = h.do(t, "GET", "/nowhere", "", nil, &e)
	if got := resp.Header.Get(gateway.ChainIDHeader); got != chainID {
		t.Fatalf("404 answer: %s %q", gateway.ChainIDHeader, got)
	}
}

func TestStateWithProofs(t *testing.T) {
	h := setup(t)
	var got gateway.StateResponse
	wantStatus(t, h.do(t, "GET", "/v1/state/balance/USD/alice?prove=true", "", nil, &got), http.StatusOK)
	if !got.Found || got.Key != "balance/USD/alice" || got.Height != 1 || got.Proof == nil || got.Header == nil || got.Certificate == nil {
		t.Fatalf("state: %+v", got)
	}
	if d, ok := got.Decoded.(float64); !ok || d != 100 {
		t.Fatalf("decoded %#v, want 100", got.Decoded)
	}
	// A client trusts the header (after checking its certificate), not the node.
	if err := got.Proof.VerifyMembership(got.Header.StateRoot, got.Key, got.Value); err != nil {
		t.Fatalf("membership proof: %v", err)
	}
	if err := got.Proof.VerifyMembership(got.Header.StateRoot, got.Key, encoding.MustMarshal(uint64(101))); !errors.Is(err, proof.ErrProofMismatch) {
		t.Fatalf("proof accepts a wrong value: %v", err)
	}

	var none gateway.StateResponse
	wantStatus(t, h.do(t, "GET", "/v1/state/balance/USD/carol?prove=true&height=1", "", nil, &none), http.StatusOK)
	if none.Found || none.Value != nil || none.Proof == nil {
		t.Fatalf("absent key: %+v", none)
	}
	if err := none.Proof.VerifyNonMembership(none.Header.StateRoot, "balance/USD/carol"); err != nil {
		t.Fatalf("non-membership proof: %v", err)
	}

	var plain gateway.StateResponse
	wantStatus(t, h.do(t, "GET", "/v1/state/config/name", "", nil, &plain), http.StatusOK)
	if m, ok := plain.Decoded.(map[string]any); !ok || m["name"] != "plug" || plain.Proof != nil || plain.Header != nil {
		t.Fatalf("plain read: %+v", plain)
	}

	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "GET", "/v1/state/x?height=9", "", nil, &e), http.StatusNotFound)
	wantStatus(t, h.do(t, "GET", "/v1/state/x?height=-1", "", nil, &e), http.StatusBadRequest)
	wantStatus(t, h.do(t, "GET", "/v1/state/x?prove=perhaps", "", nil, &e), http.StatusBadRequest)
	wantStatus(t, h.do(t, "GET", "/v1/state/", "", nil, &e), http.StatusBadRequest)
}

func TestStateRefusesABadProof(t *testing.T) {
	h := setup(t)
	h.f.set(func(f *fakeBackend) { f.badProof = true })
	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "GET", "/v1/state/balance/USD/alice?prove=true", "", nil, &e), http.StatusInternalServerError)
	if e.Code != gateway.CodeInternal {
		t.Fatalf("code %q", e.Code)
	}
}

func TestBlocksAndHeaders(t *testing.T) {
	h := setup(t)
	x := signedTx(t, 0)
	id, _ := x.ID()
	h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, x), nil)
	h.f.commit(id, exec.OK)

	var b gateway.BlockResponse
	wantStatus(t, h.do(t, "GET", "/v1/blocks/2", "", nil, &b), http.StatusOK)
	if b.Block == nil || b.Block.Header.Height != 2 || len(b.TxIDs) != 1 || b.TxIDs[0] != id || b.Certificate == nil {
		t.Fatalf("block: %+v", b)
	}
	if b.Block.Header.Hash() != b.Hash || b.Certificate.BlockID != b.Hash {
		t.Fatal("block hash does not survive JSON")
	}
	if root, _ := block.TxRoot(b.Block.Txs); root != proof.ListRoot(b.TxIDs) {
		t.Fatal("JSON transactions do not hash back to their ids")
	}

	var hd gateway.HeaderResponse
	wantStatus(t, h.do(t, "GET", "/v1/headers/1", "", nil, &hd), http.StatusOK)
	if hd.Header == nil || hd.Header.Height != 1 || hd.Header.Hash() != hd.Hash || hd.Certificate == nil {
		t.Fatalf("header: %+v", hd)
	}
	wantStatus(t, h.do(t, "GET", "/v1/headers/latest", "", nil, &hd), http.StatusOK)
	if hd.Header.Height != 2 {
		t.Fatalf("latest header at %d", hd.Header.Height)
	}

	// Canonical CBOR on request.
	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/headers/2", nil)
	req.Header.Set("Accept", "application/cbor")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var hc gateway.HeaderResponse
	if ct := resp.Header.Get("Content-Type"); ct != "application/cbor" {
		t.Fatalf("content type %q", ct)
	}
	if err := encoding.Unmarshal(raw, &hc); err != nil || hc.Header.Hash() != hd.Hash {
		t.Fatalf("CBOR header: %v", err)
	}

	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "GET", "/v1/blocks/99", "", nil, &e), http.StatusNotFound)
	wantStatus(t, h.do(t, "GET", "/v1/headers/99", "", nil, &e), http.StatusNotFound)
	wantStatus(t, h.do(t, "GET", "/v1/blocks/0", "", nil, &e), http.StatusBadRequest)
	wantStatus(t, h.do(t, "GET", "/v1/headers/two", "", nil, &e), http.StatusBadRequest)
}

func TestStatusAndHealth(t *testing.T) {
	h := setup(t, gateway.WithMaxLag(5))
	var st gateway.Status
	wantStatus(t, h.do(t, "GET", "/v1/status", "", nil, &st), http.StatusOK)
	if st.ChainID != chainID || st.Height != 1 || st.Node != "n0" || st.Peers != 3 {
		t.Fatalf("status: %+v", st)
	}
	var hr gateway.HealthResponse
	wantStatus(t, h.do(t, "GET", "/healthz", "", nil, &hr), http.StatusOK)

	h.f.set(func(f *fakeBackend) { f.status.CatchingUp, f.status.BestHeight = true, 4 })
	wantStatus(t, h.do(t, "GET", "/healthz", "", nil, &hr), http.StatusOK) // 3 behind, within 5
	h.f.set(func(f *fakeBackend) { f.status.BestHeight = 100 })
	resp, err := h.srv.Client().Get(h.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&hr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || hr.Status != "unhealthy" || hr.Reason == "" {
		t.Fatalf("far behind: %d %+v", resp.StatusCode, hr)
	}
	h.f.set(func(f *fakeBackend) { f.status.CatchingUp, f.status.Peers = false, 0 })
	resp, _ = h.srv.Client().Get(h.srv.URL + "/healthz")
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("lonely validator: %d", resp.StatusCode)
	}
	h.f.set(func(f *fakeBackend) { f.status.Validators = 1 })
	resp, _ = h.srv.Client().Get(h.srv.URL + "/healthz")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("single validator: %d", resp.StatusCode)
	}
}

func TestPanickingBackend(t *testing.T) {
	h := setup(t)
	h.f.set(func(f *fakeBackend) { f.panicking = true })
	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, signedTx(t, 0)), &e), http.StatusInternalServerError)
	wantStatus(t, h.do(t, "GET", "/v1/status", "", nil, &e), http.StatusInternalServerError)
	if e.Code != gateway.CodeInternal || strings.Contains(e.Error, "exploded") {
		t.Fatalf("panic answer leaks or has the wrong code: %+v", e)
	}
	h.f.set(func(f *fakeBackend) { f.panicking = false })
	wantStatus(t, h.do(t, "GET", "/v1/status", "", nil, nil), http.StatusOK)
}

func TestUnknownRouteAndMethod(t *testing.T) {
	h := setup(t)
	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "GET", "/v2/nothing", "", nil, &e), http.StatusNotFound)
	resp := h.do(t, "DELETE", "/v1/status", "", nil, &e)
	wantStatus(t, resp, http.StatusMethodNotAllowed)
	if !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Fatalf("Allow %q", resp.Header.Get("Allow"))
	}
}

// sseReader reads events from a stream.
type sseReader struct {
	sc *bufio.Scanner
}

// next returns the next event (kind and data), skipping comments; heartbeats
// counts the heartbeat comments met.
func (r *sseReader) next(heartbeats *int) (string, string, error) {
	var kind, data string
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if kind != "" {
				return kind, data, nil
			}
		case line == ": heartbeat":
			if heartbeats != nil {
				*heartbeats++
			}
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	if err := r.sc.Err(); err != nil {
		return "", "", err
	}
	return "", "", io.EOF
}

func openStream(t *testing.T, ctx context.Context, url string) (*http.Response, *sseReader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, &sseReader{sc: bufio.NewScanner(resp.Body)}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEvents(t *testing.T) {
	h := setup(t, gateway.WithHeartbeat(20*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, sse := openStream(t, ctx, h.srv.URL+"/v1/events")
	defer resp.Body.Close()
	waitFor(t, "subscription", func() bool { return h.f.subscribers() == 1 })

	x := signedTx(t, 0)
	id, _ := x.ID()
	h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, x), nil)
	time.Sleep(50 * time.Millisecond) // let a heartbeat or two pass
	h.f.commit(id, exec.OK)

	beats := 0
	kind, data, err := sse.next(&beats)
	if err != nil || kind != "tx" {
		t.Fatalf("first event: %q %v", kind, err)
	}
	var txEv map[string]any
	if err := json.Unmarshal([]byte(data), &txEv); err != nil || txEv["id"] != id.String() || txEv["status"] != "ok" || txEv["code"] != 0.0 {
		t.Fatalf("tx event %s: %v", data, err)
	}
	kind, data, err = sse.next(&beats)
	var blkEv gateway.Event
	if err != nil || kind != "block" || json.Unmarshal([]byte(data), &blkEv) != nil || blkEv.Height != 2 || blkEv.Txs != 1 || blkEv.Hash.IsZero() {
		t.Fatalf("block event: %q %s %v", kind, data, err)
	}
	if strings.Contains(data, "code") {
		t.Fatalf("block event shows a code: %s", data)
	}
	if beats == 0 {
		t.Fatal("no heartbeat while idle")
	}

	// The client leaves: the handler ends and cancels its subscription.
	cancel()
	resp.Body.Close()
	waitFor(t, "unsubscribe after disconnect", func() bool { return h.f.subscribers() == 0 })
}

func TestEventsFilterAndShutdown(t *testing.T) {
	h := setup(t)
	resp, sse := openStream(t, context.Background(), h.srv.URL+"/v1/events?kinds=block")
	defer resp.Body.Close()
	waitFor(t, "subscription", func() bool { return h.f.subscribers() == 1 })
	x := signedTx(t, 0)
	id, _ := x.ID()
	h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, x), nil)
	h.f.commit(id, exec.OK)
	if kind, _, err := sse.next(nil); err != nil || kind != "block" {
		t.Fatalf("filtered stream: %q %v", kind, err)
	}
	h.gw.Close()
	if _, _, err := sse.next(nil); err != io.EOF {
		t.Fatalf("stream after Close: %v, want EOF", err)
	}
	waitFor(t, "unsubscribe after Close", func() bool { return h.f.subscribers() == 0 })

	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "GET", "/v1/events?kinds=votes", "", nil, &e), http.StatusBadRequest)
}

func TestMetrics(t *testing.T) {
	h := setup(t)
	h.gw.Metrics().BlockCommitted(5, 1, []exec.Receipt{{Code: exec.OK}, {Code: exec.Failed}}, 300*time.Millisecond)
	h.gw.Metrics().SetPeers(3)
	h.gw.Metrics().SetMempool(12)
	h.do(t, "GET", "/v1/status", "", nil, nil)
	h.do(t, "GET", "/v1/tx/zz", "", nil, nil)
	resp, err := h.srv.Client().Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		"plug_height 5", "plug_round 1", "plug_blocks_committed_total 1",
		`plug_txs_committed_total{code="ok"} 1`, `plug_txs_committed_total{code="failed"} 1`,
		"plug_mempool_size 12", "plug_peers 3", "plug_block_commit_seconds_count 1",
		`plug_http_requests_total{code="200",route="GET /v1/status"} 1`,
		`plug_http_requests_total{code="400",route="GET /v1/tx/{id}"} 1`,
		`plug_http_request_seconds_count{route="GET /v1/status"} 1`,
		"plug_gateway_event_streams 0", "go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A second node in the same process has its own registry, and a node may
	// create its metrics before its gateway.
	m := gateway.NewMetrics(nil)
	m.Height.Set(1)
	other := setup(t)
	if other.gw.Registry() == h.gw.Registry() {
		t.Fatal("two servers share a registry")
	}
	again := gateway.NewMetrics(h.gw.Registry())
	if again.Height != h.gw.Metrics().Height {
		t.Fatal("NewMetrics on the same registry does not reuse the collectors")
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	f := newFake(t)
	gw := gateway.New(f)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stream, _ := openStream(t, context.Background(), url+"/v1/events")
	defer stream.Body.Close()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("shutdown waited for the event stream")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

func TestUncleanPathRedirects(t *testing.T) {
	h := setup(t)
	rec := httptest.NewRecorder()
	h.gw.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1//status", nil))
	if rec.Code/100 != 3 || rec.Header().Get("Location") != "/v1/status" {
		t.Fatalf("unclean path: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

// TestSubmitBatch: POST /v1/txs admits each transaction on its own, in order,
// answers one result per transaction, and refuses a body that is no batch.
func TestSubmitBatch(t *testing.T) {
	h := setup(t)
	good, other := signedTx(t, 0), signedTx(t, 1)
	garbled := encodeTx(t, signedTx(t, 2))[:20] // truncated
	body := encoding.MustMarshal([][]byte{encodeTx(t, good), garbled, []byte{0xff}, encodeTx(t, other)})
	var got gateway.BatchResponse
	wantStatus(t, h.do(t, "POST", "/v1/txs", "application/cbor", body, &got), http.StatusOK)
	if len(got.Results) != 4 {
		t.Fatalf("%d results for 4 transactions: %+v", len(got.Results), got)
	}
	gid, _ := good.ID()
	oid, _ := other.ID()
	if r := got.Results[0]; r.Status != "pending" || r.ID != gid {
		t.Errorf("result 0: %+v, want pending %s", r, gid.Short())
	}
	for i := 1; i <= 2; i++ {
		if r := got.Results[i]; r.Status != "error" || r.Code != gateway.CodeInvalid || r.Error == "" {
			t.Errorf("result %d: %+v, want an invalid error", i, r)
		}
	}
	if r := got.Results[3]; r.Status != "pending" || r.ID != oid {
		t.Errorf("result 3: %+v, want pending %s", r, oid.Short())
	}
	h.f.mu.Lock()
	n := len(h.f.pending)
	h.f.mu.Unlock()
	if n != 2 {
		t.Errorf("%d transactions admitted, want 2", n)
	}

	var e gateway.ErrorBody
	for name, b := range map[string][]byte{
		"not cbor":  []byte("{}"),
		"not array": encoding.MustMarshal(map[string]int{"a": 1}),
		"empty":     encoding.MustMarshal([][]byte{}),
		"too many":  encoding.MustMarshal(make([][]byte, gateway.MaxBatchTxs+1)),
	} {
		wantStatus(t, h.do(t, "POST", "/v1/txs", "application/cbor", b, &e), http.StatusBadRequest)
		if e.Code != gateway.CodeInvalid {
			t.Errorf("%s: code %q", name, e.Code)
		}
	}

	h.f.set(func(f *fakeBackend) { f.busy = true })
	wantStatus(t, h.do(t, "POST", "/v1/txs", "application/cbor", encoding.MustMarshal([][]byte{encodeTx(t, signedTx(t, 5))}), &got), http.StatusOK)
	if r := got.Results[0]; r.Code != gateway.CodeBusy {
		t.Errorf("busy node: %+v", r)
	}
}

// TestStates: POST /v1/states answers every key at one height, in order, with a
// proof each checked against the one header; bad requests are 4xx.
func TestStates(t *testing.T) {
	h := setup(t)
	var got gateway.StatesResponse
	body := []byte(`{"keys": ["balance/USD/alice", "balance/USD/carol", "config/name"], "prove": true}`)
	wantStatus(t, h.do(t, "POST", "/v1/states", "application/json", body, &got), http.StatusOK)
	if got.Height != 1 || len(got.Results) != 3 || got.Header == nil || got.Certificate == nil {
		t.Fatalf("states: %+v", got)
	}
	for i, want := range []struct {
		key   string
		found bool
	}{{"balance/USD/alice", true}, {"balance/USD/carol", false}, {"config/name", true}} {
		e := got.Results[i]
		if e.Key != want.key || e.Found != want.found || e.Proof == nil {
			t.Fatalf("result %d: %+v", i, e)
		}
		var err error
		if e.Found {
			err = e.Proof.VerifyMembership(got.Header.StateRoot, e.Key, e.Value)
		} else {
			err = e.Proof.VerifyNonMembership(got.Header.StateRoot, e.Key)
		}
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
	}
	if d, ok := got.Results[0].Decoded.(float64); !ok || d != 100 {
		t.Fatalf("decoded %#v, want 100", got.Results[0].Decoded)
	}

	// CBOR in, CBOR out, at an explicit height, without proofs.
	req := encoding.MustMarshal(gateway.StatesRequest{Height: 1, Keys: []string{"balance/USD/alice"}})
	hreq, _ := http.NewRequest("POST", h.srv.URL+"/v1/states", bytes.NewReader(req))
	hreq.Header.Set("Content-Type", "application/cbor")
	hreq.Header.Set("Accept", "application/cbor")
	resp, err := h.srv.Client().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cb gateway.StatesResponse
	if err := encoding.Unmarshal(raw, &cb); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CBOR answer %d: %v", resp.StatusCode, err)
	}
	if cb.Height != 1 || len(cb.Results) != 1 || !cb.Results[0].Found || cb.Results[0].Proof != nil || cb.Header != nil {
		t.Fatalf("CBOR states: %+v", cb)
	}

	var e gateway.ErrorBody
	for _, bad := range []string{`{"keys": []}`, `{"keys": [""]}`, `{"keys": ["a"], "extra": 1}`, `not json`, `{"keys": ["a"]} {}`} {
		wantStatus(t, h.do(t, "POST", "/v1/states", "application/json", []byte(bad), &e), http.StatusBadRequest)
	}
	many, _ := json.Marshal(gateway.StatesRequest{Keys: slices.Repeat([]string{"k"}, gateway.MaxStateKeys+1)})
	wantStatus(t, h.do(t, "POST", "/v1/states", "application/json", many, &e), http.StatusBadRequest)
	wantStatus(t, h.do(t, "POST", "/v1/states", "application/json", []byte(`{"height": 9, "keys": ["a"]}`), &e), http.StatusNotFound)
	wantStatus(t, h.do(t, "POST", "/v1/states", "application/cbor", []byte{0xff}, &e), http.StatusBadRequest)

	h.f.set(func(f *fakeBackend) { f.badProof = true })
	wantStatus(t, h.do(t, "POST", "/v1/states", "application/json", body, &e), http.StatusInternalServerError)
}
