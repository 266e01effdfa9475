package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// MaxStateKeys bounds the keys of one POST /v1/states.
const MaxStateKeys = 1024

// StatesRequest is the body of POST /v1/states: many keys read at one height
// (0: the latest), each with its own proof when Prove is set.
type StatesRequest struct {
	Height uint64   `cbor:"1,keyasint" json:"height"`
	Keys   []string `cbor:"2,keyasint" json:"keys"`
	Prove  bool     `cbor:"3,keyasint" json:"prove"`
}

// StateEntry is one key's answer in POST /v1/states.
type StateEntry struct {
	Key   string `cbor:"1,keyasint" json:"key"`
	Found bool   `cbor:"2,keyasint" json:"found"`
	// Value is the stored canonical CBOR (base64 in JSON); nil when not found.
	Value []byte `cbor:"3,keyasint,omitempty" json:"value,omitempty"`
	// Decoded is Value as plain values, in JSON answers only.
	Decoded any `cbor:"-" json:"decoded,omitempty"`
	// Proof is membership when Found, non-membership otherwise; only with prove.
	Proof *proof.StateProof `cbor:"4,keyasint,omitempty" json:"proof,omitempty"`
}

// StatesResponse answers POST /v1/states: every key at the same Height, in the
// order asked. With prove it carries that height's header and certificate once,
// so a light client checks the certificate once and each proof against the
// header's state root.
type StatesResponse struct {
	Height      uint64                 `cbor:"1,keyasint" json:"height"`
	StateRoot   hash.Hash              `cbor:"2,keyasint" json:"state_root"`
	Results     []StateEntry           `cbor:"3,keyasint" json:"results"`
	Header      *block.Header          `cbor:"4,keyasint,omitempty" json:"header,omitempty"`
	Certificate *consensus.Certificate `cbor:"5,keyasint,omitempty" json:"certificate,omitempty"`
}

// handleStates: POST /v1/states with a StatesRequest in CBOR (application/cbor)
// or JSON. A relay proving the records of many crosschain transactions at one
// height asks once instead of once per key.
func (s *Server) handleStates(w http.ResponseWriter, r *http.Request) {
	req, err := s.readStatesRequest(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	results, err := s.b.States(req.Height, req.Keys, req.Prove)
	if err == nil && len(results) != len(req.Keys) {
		err = fmt.Errorf("backend returned %d state results for %d keys", len(results), len(req.Keys))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := StatesResponse{Height: results[0].Height, StateRoot: results[0].StateRoot, Results: make([]StateEntry, len(results))}
	cbor := wantsCBOR(r)
	for i, res := range results {
		if res == nil || res.Height != out.Height || res.StateRoot != out.StateRoot || (res.Key != "" && res.Key != req.Keys[i]) {
			s.fail(w, r, fmt.Errorf("backend answered key %d of POST /v1/states inconsistently", i))
			return
		}
		cp := *res
		cp.Key = req.Keys[i]
		if req.Prove {
			if err := s.checkProof(&cp); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		e := StateEntry{Key: cp.Key, Found: cp.Found, Value: cp.Value, Proof: cp.Proof}
		if !cbor && cp.Found && cp.Value != nil {
			e.Decoded = decodeValue(cp.Value)
		}
		out.Results[i] = e
	}
	if req.Prove && out.Height > 0 {
		if out.Header, out.Certificate, err = s.anchor(out.Height, out.StateRoot); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.reply(w, r, http.StatusOK, out)
}

// readStatesRequest reads and checks a POST /v1/states body.
func (s *Server) readStatesRequest(w http.ResponseWriter, r *http.Request) (*StatesRequest, error) {
	body, err := s.readBody(w, r, s.maxBody)
	if err != nil {
		return nil, err
	}
	var req StatesRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/cbor" {
		if err := encoding.Unmarshal(body, &req); err != nil {
			return nil, invalid("CBOR body: %v (want a StatesRequest: {1: height, 2: [keys], 3: prove})", err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, invalid(`JSON body: %v (want {"height": 0, "keys": ["..."], "prove": true})`, err)
		}
		if dec.More() {
			return nil, invalid("JSON body: trailing data")
		}
	}
	if len(req.Keys) == 0 || len(req.Keys) > MaxStateKeys {
		return nil, invalid("%d keys: ask for 1 to %d", len(req.Keys), MaxStateKeys)
	}
	for i, k := range req.Keys {
		if k == "" {
			return nil, invalid("key %d is empty", i)
		}
	}
	return &req, nil
}

// anchor returns the header and certificate that anchor a proven read at height
// with state root root, refusing to answer when they disagree.
func (s *Server) anchor(height uint64, root hash.Hash) (*block.Header, *consensus.Certificate, error) {
	hdr, cert, err := s.b.Header(height)
	if err != nil {
		return nil, nil, fmt.Errorf("header %d of a proven state read: %w", height, err)
	}
	if hdr.StateRoot != root {
		return nil, nil, fmt.Errorf("state root %s at height %d, but the header says %s", root, height, hdr.StateRoot)
	}
	return hdr, cert, nil
}
