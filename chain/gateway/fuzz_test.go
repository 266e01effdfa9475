package gateway_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/gateway"
)

var fuzzTypes = []string{"application/cbor", "application/json", "", "text/plain", "application/octet-stream"}

// FuzzSubmit throws arbitrary bodies at POST /v1/tx: the gateway never panics,
// never answers 5xx (the backend here is never busy and never fails), and every
// error answer is a JSON error.
func FuzzSubmit(f *testing.F) {
	good := encodeTx(f, signedTx(f, 0))
	js, _ := json.Marshal(map[string]string{"tx": base64.StdEncoding.EncodeToString(good)})
	for i, seed := range [][]byte{
		good, js, nil, {}, {0xa0}, {0xa2, 0x01, 0xa0, 0x02, 0x80}, []byte(`{}`), []byte(`{"tx":"oA=="}`),
		[]byte(`{"tx": null}`), []byte(`[1,2]`), good[:len(good)/2], bytes.Repeat([]byte{0x9f}, 64),
		{0xbf, 0xff}, {0xd8, 0x18, 0x40}, []byte("  {\"tx\": \"" + base64.StdEncoding.EncodeToString(good[:10]) + "\"}"),
	} {
		f.Add(seed, uint8(i))
	}
	b := newFake(f)
	gw := gateway.New(b, gateway.WithMaxBody(256<<10))
	h := gw.Handler()
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		req := httptest.NewRequest("POST", "/v1/tx", bytes.NewReader(body))
		if c := fuzzTypes[int(ct)%len(fuzzTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		case rec.Code == http.StatusAccepted:
			var r gateway.SubmitResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.ID.IsZero() {
				t.Fatalf("202 body %q: %v", rec.Body, err)
			}
		case rec.Code == http.StatusBadRequest || rec.Code == http.StatusRequestEntityTooLarge:
			var e gateway.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
		default:
			t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzStates throws arbitrary bodies at POST /v1/states: never a panic or a
// 5xx, every error a JSON error, and every 200 answers each asked key in order.
func FuzzStates(f *testing.F) {
	for i, seed := range [][]byte{
		[]byte(`{"keys": ["balance/USD/alice"], "prove": true}`), []byte(`{"height": 1, "keys": ["a", "b"]}`),
		[]byte(`{"keys": []}`), []byte(`{"keys": [""]}`), []byte(`{}`), nil, {0xa0},
		encoding.MustMarshal(gateway.StatesRequest{Keys: []string{"config/name", "x"}, Prove: true}),
		encoding.MustMarshal(gateway.StatesRequest{Height: 7, Keys: []string{"x"}}), {0xa1, 0x02, 0x81, 0x60},
	} {
		f.Add(seed, uint8(i))
	}
	h := gateway.New(newFake(f), gateway.WithMaxBody(256<<10)).Handler()
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		req := httptest.NewRequest("POST", "/v1/states", bytes.NewReader(body))
		if c := fuzzTypes[int(ct)%len(fuzzTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusOK:
			var asked gateway.StatesRequest
			if encoding.Unmarshal(body, &asked) != nil && json.Unmarshal(body, &asked) != nil {
				t.Fatalf("200 for a body that is neither CBOR nor JSON: %q", body)
			}
			var r gateway.StatesResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || len(r.Results) != len(asked.Keys) {
				t.Fatalf("200 body %q for %d keys: %v", rec.Body, len(asked.Keys), err)
			}
		case rec.Code == http.StatusBadRequest || rec.Code == http.StatusRequestEntityTooLarge || rec.Code == http.StatusNotFound:
			var e gateway.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
		default:
			t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
		}
	})
}
