package gateway_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

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
