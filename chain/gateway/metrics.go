package gateway

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/plugchain/plug/chain/exec"
)

// Metrics holds a node's Prometheus collectors. The node updates the chain
// metrics; the gateway updates the plug_http_* and plug_gateway_* ones. Each node
// has its own registry, so several nodes in one process never collide. Methods
// are safe on a nil *Metrics (they do nothing).
type Metrics struct {
	Height          prometheus.Gauge       // plug_height
	Round           prometheus.Gauge       // plug_round
	BlocksCommitted prometheus.Counter     // plug_blocks_committed_total
	TxsCommitted    *prometheus.CounterVec // plug_txs_committed_total{code="ok|failed"}
	MempoolSize     prometheus.Gauge       // plug_mempool_size
	Peers           prometheus.Gauge       // plug_peers
	// CompactFetched counts transactions of compact blocks this node lacked and
	// fetched from a peer: it stays near zero while transaction gossip keeps up.
	CompactFetched prometheus.Counter // plug_compact_txs_fetched_total
	// BlockCommitSeconds is the time from the start of a height to its commit
	// certificate.
	BlockCommitSeconds prometheus.Histogram // plug_block_commit_seconds

	HTTPRequests       *prometheus.CounterVec   // plug_http_requests_total{route,code}
	HTTPRequestSeconds *prometheus.HistogramVec // plug_http_request_seconds{route}
	EventStreams       prometheus.Gauge         // plug_gateway_event_streams
	// Refused counts requests the gateway's limits refused, by reason:
	// rate_limited (429), in_flight and body_budget (503 overloaded),
	// too_large (413).
	Refused *prometheus.CounterVec // plug_gateway_refused_total{reason}
	// BodyBytes is the body budget reserved by requests being handled.
	BodyBytes prometheus.Gauge // plug_gateway_body_bytes_in_flight
}

// NewMetrics creates the collectors and registers them, with the Go runtime and
// process collectors, in reg. Calling it again on the same registry returns
// collectors bound to the ones already registered.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Height: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plug_height", Help: "Latest committed block height.",
		}),
		Round: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plug_round", Help: "Consensus round of the height being decided.",
		}),
		BlocksCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plug_blocks_committed_total", Help: "Blocks committed by this node.",
		}),
		TxsCommitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plug_txs_committed_total", Help: "Transactions committed, by receipt code (ok, failed).",
		}, []string{"code"}),
		MempoolSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plug_mempool_size", Help: "Transactions waiting in the mempool.",
		}),
		Peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plug_peers", Help: "Connected peers.",
		}),
		CompactFetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plug_compact_txs_fetched_total", Help: "Transactions of compact blocks fetched from a peer because this node lacked them.",
		}),
		BlockCommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plug_block_commit_seconds",
			Help:    "Time from the start of a height to its commit certificate.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plug_http_requests_total", Help: "Gateway HTTP requests, by route pattern and status code.",
		}, []string{"route", "code"}),
		HTTPRequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "plug_http_request_seconds", Help: "Gateway HTTP request duration, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		EventStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plug_gateway_event_streams", Help: "Open /v1/events streams.",
		}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plug_gateway_refused_total", Help: "Gateway requests refused by a limit, by reason (rate_limited, in_flight, body_budget, too_large).",
		}, []string{"reason"}),
		BodyBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plug_gateway_body_bytes_in_flight", Help: "Bytes of request bodies reserved in the gateway's body budget.",
		}),
	}
	if reg == nil {
		return m
	}
	m.Height = register(reg, m.Height)
	m.Round = register(reg, m.Round)
	m.BlocksCommitted = register(reg, m.BlocksCommitted)
	m.TxsCommitted = register(reg, m.TxsCommitted)
	m.MempoolSize = register(reg, m.MempoolSize)
	m.Peers = register(reg, m.Peers)
	m.CompactFetched = register(reg, m.CompactFetched)
	m.BlockCommitSeconds = register(reg, m.BlockCommitSeconds)
	m.HTTPRequests = register(reg, m.HTTPRequests)
	m.HTTPRequestSeconds = register(reg, m.HTTPRequestSeconds)
	m.EventStreams = register(reg, m.EventStreams)
	m.Refused = register(reg, m.Refused)
	m.BodyBytes = register(reg, m.BodyBytes)
	register(reg, collectors.NewGoCollector())
	register(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// register registers c, or returns the equal collector already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err) // a name clash with a different collector: a programming error
	}
	return c
}

// BlockCommitted records a committed block: its height, the round it was decided
// in, its receipts and how long the height took.
func (m *Metrics) BlockCommitted(height uint64, round uint32, receipts []exec.Receipt, took time.Duration) {
	if m == nil {
		return
	}
	m.Height.Set(float64(height))
	m.Round.Set(float64(round))
	m.BlocksCommitted.Inc()
	var ok, failed int
	for _, r := range receipts {
		if r.Code == exec.OK {
			ok++
		} else {
			failed++
		}
	}
	m.TxsCommitted.WithLabelValues("ok").Add(float64(ok))
	m.TxsCommitted.WithLabelValues("failed").Add(float64(failed))
	if took > 0 {
		m.BlockCommitSeconds.Observe(took.Seconds())
	}
}

// SetRound records the round being decided.
func (m *Metrics) SetRound(round uint32) {
	if m != nil {
		m.Round.Set(float64(round))
	}
}

// SetMempool records the mempool size.
func (m *Metrics) SetMempool(n int) {
	if m != nil {
		m.MempoolSize.Set(float64(n))
	}
}

// TxsFetched records n transactions fetched to rebuild a compact block.
func (m *Metrics) TxsFetched(n int) {
	if m != nil {
		m.CompactFetched.Add(float64(n))
	}
}

// SetPeers records the number of connected peers.
func (m *Metrics) SetPeers(n int) {
	if m != nil {
		m.Peers.Set(float64(n))
	}
}

func (m *Metrics) refused(reason string) {
	if m != nil {
		m.Refused.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) bodyBytes(delta float64) {
	if m != nil {
		m.BodyBytes.Add(delta)
	}
}
