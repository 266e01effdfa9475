package gateway_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/gateway"
)

// damagedBackend is the fake whose stored block 7 cannot be read.
type damagedBackend struct{ *fakeBackend }

func (d damagedBackend) Block(h uint64) (*block.Block, *consensus.Certificate, error) {
	if h == 7 {
		return nil, nil, fmt.Errorf("block 7: %w", boltcheck.Corrupt("/srv/val-1/chain.db", "reading it failed: invalid page type"))
	}
	return d.fakeBackend.Block(h)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A block the store cannot read is a 500 with code storage_corrupt, and the
// log carries the error's text (it used to log "err": {}).
func TestDamagedStoreAnswersStorageCorrupt(t *testing.T) {
	var logs syncBuffer
	gw := gateway.New(damagedBackend{newFake(t)}, gateway.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(func() { gw.Close(); srv.Close() })
	h := &harness{gw: gw, srv: srv}
	var e gateway.ErrorBody
	wantStatus(t, h.do(t, "GET", "/v1/blocks/7", "", nil, &e), http.StatusInternalServerError)
	if e.Code != gateway.CodeStorage || strings.Contains(e.Error, "/srv/") {
		t.Fatalf("answer %+v: want code %s and no path", e, gateway.CodeStorage)
	}
	if l := logs.String(); !strings.Contains(l, "chain.db is damaged") || strings.Contains(l, `"err":{}`) {
		t.Fatalf("log: %s", l)
	}
}
