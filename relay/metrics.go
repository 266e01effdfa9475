package relay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the relay's Prometheus collectors, on its own registry.
type Metrics struct {
	Reg *prometheus.Registry
	// Proofs counts steps relayed, by kind: prepare, decide, finish.
	Proofs *prometheus.CounterVec
	// HeaderUpdates counts lc/update transactions submitted, by source and dest.
	HeaderUpdates *prometheus.CounterVec
	// Lag is the source chain's height minus dest's light-client height.
	Lag *prometheus.GaugeVec
	// Height is each chain's latest height as last polled.
	Height *prometheus.GaugeVec
	// Pending is the number of XTxs not yet finished on every leg.
	Pending prometheus.Gauge
	// SubmitErrors counts refused or failed submissions, by chain.
	SubmitErrors *prometheus.CounterVec
	// StateBatches counts the batched state reads of the passes, by chain.
	StateBatches *prometheus.CounterVec
	// Batches counts xchain/batch transactions a node admitted, by chain; with
	// Proofs it gives the steps per batch.
	Batches *prometheus.CounterVec
}

// NewMetrics registers the relay's collectors on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Reg: prometheus.NewRegistry(),
		Proofs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plug_relay_proofs_relayed_total",
			Help: "Crosschain steps submitted, by kind (prepare, decide, finish)."}, []string{"kind"}),
		HeaderUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plug_relay_header_updates_total",
			Help: "Light-client header updates submitted, by source and destination chain."}, []string{"source", "dest"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plug_relay_lag_blocks",
			Help: "Source chain height minus the destination's light-client height."}, []string{"source", "dest"}),
		Height: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plug_relay_chain_height",
			Help: "Latest height of each followed chain."}, []string{"chain"}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "plug_relay_pending_xtxs",
			Help: "Crosschain transactions known to the relay and not finished on every leg."}),
		SubmitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plug_relay_submit_errors_total",
			Help: "Submissions a node refused or that failed, by chain."}, []string{"chain"}),
		StateBatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plug_relay_state_batches_total",
			Help: "Batched state reads (POST /v1/states) made to advance crosschain transactions, by chain."}, []string{"chain"}),
		Batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plug_relay_batches_total",
			Help: "xchain/batch transactions submitted (each carrying many steps), by chain."}, []string{"chain"}),
	}
	m.Reg.MustRegister(m.Proofs, m.HeaderUpdates, m.Lag, m.Height, m.Pending, m.SubmitErrors, m.StateBatches, m.Batches,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
