package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/tx"
)

// SubmitResponse answers POST /v1/tx without wait, or when the wait timed out.
type SubmitResponse struct {
	ID hash.Hash `cbor:"1,keyasint" json:"id"`
	// Status is "pending" (accepted, not committed yet).
	Status string `cbor:"2,keyasint" json:"status"`
}

// TxResponse answers GET /v1/tx/{id} and POST /v1/tx?wait=true once committed.
type TxResponse struct {
	*TxResult
	// Status is the receipt code's name: ok, failed or rejected.
	Status string `json:"status"`
}

// HeaderResponse answers GET /v1/headers/{height}.
type HeaderResponse struct {
	Hash        hash.Hash              `cbor:"1,keyasint" json:"hash"`
	Header      *block.Header          `cbor:"2,keyasint" json:"header"`
	Certificate *consensus.Certificate `cbor:"3,keyasint,omitempty" json:"certificate,omitempty"`
}

// BlockResponse answers GET /v1/blocks/{height}.
type BlockResponse struct {
	Hash        hash.Hash              `cbor:"1,keyasint" json:"hash"`
	Block       *block.Block           `cbor:"2,keyasint" json:"block"`
	TxIDs       []hash.Hash            `cbor:"3,keyasint" json:"tx_ids"`
	Certificate *consensus.Certificate `cbor:"4,keyasint,omitempty" json:"certificate,omitempty"`
}

// StateResponse answers GET /v1/state/{key...}. With prove=true it carries the
// header of Height and its certificate, so a light client can check the whole
// chain of trust: certificate -> header -> state root -> proof -> value.
type StateResponse struct {
	*StateResult
	Header      *block.Header          `json:"header,omitempty"`
	Certificate *consensus.Certificate `json:"certificate,omitempty"`
}

// StateCBOR is StateResponse in CBOR (without the decoded form): what clients
// asking for application/cbor receive from GET /v1/state/{key}.
type StateCBOR struct {
	Key         string                 `cbor:"1,keyasint"`
	Height      uint64                 `cbor:"2,keyasint"`
	StateRoot   hash.Hash              `cbor:"3,keyasint"`
	Found       bool                   `cbor:"4,keyasint"`
	Value       []byte                 `cbor:"5,keyasint,omitempty"`
	Proof       *proof.StateProof      `cbor:"6,keyasint,omitempty"`
	Header      *block.Header          `cbor:"7,keyasint,omitempty"`
	Certificate *consensus.Certificate `cbor:"8,keyasint,omitempty"`
}

// MaxBatchTxs bounds the transactions of one POST /v1/txs, and
// BatchBodyFactor its body: that many times the single-transaction body limit.
const (
	MaxBatchTxs     = 1000
	BatchBodyFactor = 8
)

// BatchResult is one transaction's answer in POST /v1/txs: Status "pending"
// (admitted), "committed" (it already was: sending it again changed nothing), or
// "error" with the code and message POST /v1/tx would have given.
type BatchResult struct {
	ID     hash.Hash `json:"id"`
	Status string    `json:"status"`
	Code   string    `json:"code,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// BatchResponse answers POST /v1/txs, one result per transaction, in order.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// HealthResponse answers GET /healthz.
type HealthResponse struct {
	Status string `json:"status"` // "ok" or "unhealthy"
	Reason string `json:"reason,omitempty"`
	Height uint64 `json:"height"`
}

// handleSubmit: POST /v1/tx[?wait=true&timeout=10s].
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	wait := false
	if v := q.Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, invalid("wait=%q: want true or false", v))
			return
		}
		wait = b
	}
	timeout := DefaultWait
	if v := q.Get("timeout"); v != "" {
		d, err := parseTimeout(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		timeout = d
	}
	timeout = min(timeout, s.maxWait)
	t, err := s.readTx(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The body is decoded: what the submission and its wait hold is t.
	releaseBody(r)
	var events <-chan Event
	if wait {
		// Subscribe before submitting, so the commit cannot slip by unseen.
		ev, cancel := s.b.Subscribe()
		defer cancel()
		events = ev
	}
	id, err := s.b.Submit(r.Context(), t)
	if errors.Is(err, ErrCommitted) {
		// Sent again (to another node, or after a lost answer): the client is
		// told what became of it, as a wait would have.
		if res, rerr := s.b.TxResult(r.Context(), id); rerr == nil && res != nil {
			s.reply(w, r, http.StatusOK, txResponse(res))
			return
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !wait {
		s.reply(w, r, http.StatusAccepted, SubmitResponse{ID: id, Status: "pending"})
		return
	}
	// The wait may outlast the server's write timeout.
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	res, dropped, err := s.waitCommit(r.Context(), id, events, timeout)
	switch {
	case err == nil && dropped != nil:
		s.dropped(w, dropped)
	case err == nil:
		s.reply(w, r, http.StatusOK, txResponse(res))
	case errors.Is(err, ErrNotFound):
		s.reply(w, r, http.StatusAccepted, SubmitResponse{ID: id, Status: "pending"})
	default:
		s.fail(w, r, err)
	}
}

// dropped answers 410 for a dropped transaction, with its status.
func (s *Server) dropped(w http.ResponseWriter, st *TxStatus) {
	writeJSON(w, http.StatusGone, ErrorBody{Error: fmt.Sprintf("%v: transaction %s: %s", ErrDropped, st.ID, st.Reason), Code: CodeDropped, Tx: st})
}

// handleSubmitBatch: POST /v1/txs with a CBOR array of encoded transactions.
// Each is admitted as POST /v1/tx would admit it, in order, so one sender's
// consecutive nonces arrive in sequence; one refusal does not stop the rest.
// It answers 200 with a result per transaction, or an error for a body that
// is not such an array.
func (s *Server) handleSubmitBatch(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r, BatchBodyFactor*s.maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var raws [][]byte
	if err := encoding.Unmarshal(body, &raws); err != nil {
		s.fail(w, r, invalid("body: want a CBOR array of encoded transactions: %v", err))
		return
	}
	if len(raws) == 0 || len(raws) > MaxBatchTxs {
		s.fail(w, r, invalid("%d transactions: send 1 to %d", len(raws), MaxBatchTxs))
		return
	}
	res := make([]BatchResult, len(raws))
	var txs []*tx.Tx
	var at []int // txs[j] is raws[at[j]]
	for i, raw := range raws {
		t, err := tx.Decode(raw)
		if err == nil && t.Body.ChainID != s.b.ChainID() {
			err = fmt.Errorf("%w: transaction is for chain %q, this node serves %q", tx.ErrWrongChain, t.Body.ChainID, s.b.ChainID())
		}
		if err != nil {
			_, code := classify(err)
			res[i] = BatchResult{Status: "error", Code: code, Error: err.Error()}
			continue
		}
		txs, at = append(txs, t), append(at, i)
	}
	ids, errs := s.b.SubmitBatch(r.Context(), txs)
	for j, i := range at {
		if errors.Is(errs[j], ErrCommitted) {
			res[i] = BatchResult{ID: ids[j], Status: "committed"}
			continue
		}
		if err := errs[j]; err != nil {
			_, code := classify(err)
			res[i] = BatchResult{ID: ids[j], Status: "error", Code: code, Error: err.Error()}
			continue
		}
		res[i] = BatchResult{ID: ids[j], Status: "pending"}
	}
	s.reply(w, r, http.StatusOK, BatchResponse{Results: res})
}

func parseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, invalid("timeout=%q: want a duration such as 10s", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, invalid("timeout=%q: must be positive", v)
	}
	return d, nil
}

// waitCommit waits until id is committed or dropped: it re-reads the result on
// each block or matching tx event, and every half second in case events were
// dropped. It returns ErrNotFound when the time is up, the client left or the
// server shuts down.
func (s *Server) waitCommit(ctx context.Context, id hash.Hash, events <-chan Event, timeout time.Duration) (*TxResult, *TxStatus, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := s.b.TxResult(ctx, id)
		if err == nil && res != nil {
			return res, nil, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, nil, err
		}
		if st, err := s.b.TxStatus(id); err == nil && st.Status == TxDropped {
			return nil, st, nil
		}
	wait:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					events = nil // stream ended: keep polling
					continue
				}
				if ev.Kind == KindBlock || ev.ID == id {
					break wait
				}
			case <-tick.C:
				break wait
			case <-timer.C:
				return nil, nil, ErrNotFound
			case <-ctx.Done():
				return nil, nil, ErrNotFound
			case <-s.closing:
				return nil, nil, ErrNotFound
			}
		}
	}
}

func txResponse(res *TxResult) TxResponse {
	return TxResponse{TxResult: res, Status: res.Code.String()}
}

// handleTx: GET /v1/tx/{id}.
func (s *Server) handleTx(w http.ResponseWriter, r *http.Request) {
	id, err := hash.Parse(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, invalid("transaction id: %v", err))
		return
	}
	res, err := s.b.TxResult(r.Context(), id)
	if err == nil && res == nil {
		err = ErrNotFound
	}
	if errors.Is(err, ErrNotFound) {
		st, serr := s.b.TxStatus(id)
		switch {
		case serr == nil && st.Status == TxDropped:
			s.dropped(w, st)
			return
		case serr == nil:
			s.reply(w, r, http.StatusAccepted, st)
			return
		case !errors.Is(serr, ErrNotFound):
			err = serr
		default:
			err = fmt.Errorf("%w: transaction %s is neither committed nor pending on this node "+
				"(never submitted here, or forgotten after a restart: submit it again, it is harmless)", ErrNotFound, id)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wantsCBOR(r) {
		s.reply(w, r, http.StatusOK, res)
		return
	}
	s.reply(w, r, http.StatusOK, txResponse(res))
}

// handleNonce: GET /v1/accounts/{address}/nonce.
func (s *Server) handleNonce(w http.ResponseWriter, r *http.Request) {
	a, err := crypto.ParseAddress(r.PathValue("address"))
	if err != nil {
		s.fail(w, r, invalid("address: %v (want 40 hex digits)", err))
		return
	}
	n, err := s.b.Nonce(a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// handleState: GET /v1/state/{key...}[?height=H&prove=true].
func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "" {
		s.fail(w, r, invalid("empty state key: GET /v1/state/<key>"))
		return
	}
	q := r.URL.Query()
	var height uint64
	if v := q.Get("height"); v != "" && v != "latest" {
		h, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.fail(w, r, invalid("height=%q: want a non-negative integer or latest", v))
			return
		}
		height = h
	}
	prove := false
	if v := q.Get("prove"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(w, r, invalid("prove=%q: want true or false", v))
			return
		}
		prove = b
	}
	res, err := s.b.State(height, key, prove)
	if err == nil && res == nil {
		err = errors.New("backend returned no state result")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if res.Key != "" && res.Key != key {
		s.fail(w, r, fmt.Errorf("backend answered key %q for %q", res.Key, key))
		return
	}
	cp := *res // the backend's value is not ours to change
	res = &cp
	res.Key = key
	out := StateResponse{StateResult: res}
	if prove {
		if err := s.checkProof(res); err != nil {
			s.fail(w, r, err)
			return
		}
		if res.Height > 0 {
			if out.Header, out.Certificate, err = s.anchor(res.Height, res.StateRoot); err != nil {
				s.fail(w, r, err)
				return
			}
		}
	}
	if wantsCBOR(r) {
		s.reply(w, r, http.StatusOK, StateCBOR{
			Key: key, Height: res.Height, StateRoot: res.StateRoot, Found: res.Found,
			Value: res.Value, Proof: res.Proof, Header: out.Header, Certificate: out.Certificate,
		})
		return
	}
	if res.Found && res.Decoded == nil && res.Value != nil {
		res.Decoded = decodeValue(res.Value)
	}
	s.reply(w, r, http.StatusOK, out)
}

// checkProof verifies a proof before it leaves the node: a node must never hand
// out a proof that does not hold.
func (s *Server) checkProof(res *StateResult) error {
	if res.Proof == nil {
		return errors.New("backend returned no proof")
	}
	var err error
	if res.Found {
		err = res.Proof.VerifyMembership(res.StateRoot, res.Key, res.Value)
	} else {
		err = res.Proof.VerifyNonMembership(res.StateRoot, res.Key)
	}
	if err != nil {
		return fmt.Errorf("proof of %q at height %d does not verify: %w", res.Key, res.Height, err)
	}
	return nil
}

// decodeValue decodes a stored value into JSON-able plain values, or nil when it
// has none (e.g. maps with non-string keys, NaN).
func decodeValue(b []byte) any {
	var v any
	if err := encoding.UnmarshalLax(b, &v); err != nil {
		return nil
	}
	if _, err := jsonMarshal(v); err != nil {
		return nil
	}
	return v
}

// handleBlock: GET /v1/blocks/{height}.
func (s *Server) handleBlock(w http.ResponseWriter, r *http.Request) {
	h, err := parseHeight(r.PathValue("height"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, cert, err := s.b.Block(h)
	if err == nil && b == nil {
		err = ErrNotFound
	}
	if err != nil {
		s.fail(w, r, notFoundHeight(err, "block", h))
		return
	}
	ids := make([]hash.Hash, len(b.Txs))
	for i, t := range b.Txs {
		if ids[i], err = t.ID(); err != nil {
			s.fail(w, r, fmt.Errorf("block %d transaction %d: %w", h, i, err))
			return
		}
	}
	s.reply(w, r, http.StatusOK, BlockResponse{Hash: b.Header.Hash(), Block: b, TxIDs: ids, Certificate: cert})
}

// handleHeader: GET /v1/headers/{height}.
func (s *Server) handleHeader(w http.ResponseWriter, r *http.Request) {
	h, err := parseHeight(r.PathValue("height"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.header(w, r, h)
}

// handleLatestHeader: GET /v1/headers/latest.
func (s *Server) handleLatestHeader(w http.ResponseWriter, r *http.Request) {
	h := s.b.Status().Height
	if h == 0 {
		s.fail(w, r, fmt.Errorf("%w: no block committed yet", ErrNotFound))
		return
	}
	s.header(w, r, h)
}

func (s *Server) header(w http.ResponseWriter, r *http.Request, h uint64) {
	hdr, cert, err := s.b.Header(h)
	if err == nil && hdr == nil {
		err = ErrNotFound
	}
	if err != nil {
		s.fail(w, r, notFoundHeight(err, "header", h))
		return
	}
	s.reply(w, r, http.StatusOK, HeaderResponse{Hash: hdr.Hash(), Header: hdr, Certificate: cert})
}

func notFoundHeight(err error, what string, h uint64) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: no %s at height %d", ErrNotFound, what, h)
	}
	return err
}

// handleStatus: GET /v1/status.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.b.Status())
}

// handleHealth: GET /healthz. See Health.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	st := s.b.Status()
	reason := Health(st, s.maxLag)
	if reason != "" {
		writeJSON(w, http.StatusServiceUnavailable, HealthResponse{Status: "unhealthy", Reason: reason, Height: st.Height})
		return
	}
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok", Height: st.Height})
}

// Health says why a node in status st is unhealthy, or "" when it is healthy:
// catching up more than maxLag blocks behind the best height its peers report (or
// catching up with no known best height), or a validator of a multi-validator set
// with no peers.
func Health(st Status, maxLag uint64) string {
	if st.CatchingUp {
		if st.BestHeight == 0 {
			return "catching up, best height unknown"
		}
		if st.BestHeight > st.Height && st.BestHeight-st.Height > maxLag {
			return fmt.Sprintf("catching up: height %d, peers at %d (more than %d behind)", st.Height, st.BestHeight, maxLag)
		}
	}
	if st.Validator && st.Validators > 1 && st.Peers == 0 {
		return "validator with no peers"
	}
	return ""
}
