#!/usr/bin/env bash
# pincheck.sh: the pinning check of docs/benchmarks.md ("Sharded scale-out").
#
# Starts a real-process sharded testnet (2 shards x 4 validators, one relay),
# then drives it with BenchmarkShards -shards.network, first with every process
# free to use both cores, then with each shard's four node processes (every
# thread: taskset -a) pinned to a core of their own. The relay and the load
# driver stay unpinned. Run from the repository root:
#
#   crosschain/shard/testdata/pincheck.sh [DIR]      # DIR default /tmp/plug-pincheck
#
# Environment: TRANSFERS and ACCOUNTS of the intra-shard cells (default 12000 and
# 4000: one shard clears 4000 in about a second, too short to time), XTRANSFERS
# and XACCOUNTS of the cross-shard cells (default 4000 and 2000, the in-process
# table's load).
set -euo pipefail
DIR=${1:-/tmp/plug-pincheck}
TRANSFERS=${TRANSFERS:-12000}
ACCOUNTS=${ACCOUNTS:-4000}
XTRANSFERS=${XTRANSFERS:-4000}
XACCOUNTS=${XACCOUNTS:-2000}

go build -o /tmp/plug ./cmd/plug
go test -c -o /tmp/shard.test ./crosschain/shard
/tmp/plug testnet up --dir "$DIR" --shards 2 --validators 4 --reset --detach >/dev/null
trap '/tmp/plug testnet down --dir "$DIR" >/dev/null' EXIT

status=$(/tmp/plug testnet status --dir "$DIR" --output json)
pids() { jq -r --arg c "$1" '[.chains[] | select(.chain_id == $c) | .nodes[].pid] | join(",")' <<<"$status"; }
P0=$(pids shard-0)
P1=$(pids shard-1)
echo "shard-0 nodes: $P0; shard-1 nodes: $P1"

bench() { # label, shards to use, cross percentages, pids measured, transfers, accounts
	echo "== $1"
	/tmp/shard.test -test.run '^$' -test.bench 'Shards' -test.benchtime 1x \
		-shards.network "$DIR/network.toml" -shards.use "$2" -shards.cross "$3" -shards.pids "$4" \
		-shards.transfers "$5" -shards.accounts "$6" | grep -E '^(Benchmark|ok|FAIL|---)|bench_test' || true
}
pin() { # core, comma-separated pids
	for p in ${2//,/ }; do taskset -a -cp "$1" "$p" >/dev/null; done
}

bench "unpinned: shard-0 alone (its 4 validators share both cores)" 1 0 "$P0" "$TRANSFERS" "$ACCOUNTS"
bench "unpinned: both shards" 0 0 "$P0,$P1" "$TRANSFERS" "$ACCOUNTS"
bench "unpinned: both shards, cross-shard" 0 10,50 "$P0,$P1" "$XTRANSFERS" "$XACCOUNTS"
pin 0 "$P0"
pin 1 "$P1"
bench "pinned: shard-0 alone on core 0" 1 0 "$P0" "$TRANSFERS" "$ACCOUNTS"
bench "pinned: shard-0 on core 0, shard-1 on core 1" 0 0 "$P0,$P1" "$TRANSFERS" "$ACCOUNTS"
bench "pinned: shard-0 on core 0, shard-1 on core 1, cross-shard" 0 10,50 "$P0,$P1" "$XTRANSFERS" "$XACCOUNTS"
