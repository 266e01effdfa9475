# PLUG build, test and benchmark entry points. Everything a fresh machine needs is
# fetched by these targets through the Go module proxy.
GO ?= go
PKGS := ./...
# The race detector covers the packages that run goroutines of their own, the
# mempool they share, and the code their tests call in other packages. It runs
# with -short, which skips only tests that spawn processes or run several nodes
# (state and store: crash tests, whose killed children cannot fail a run on a
# race; node: a 4-validator crash and a conflicting-admission test; relay: the
# backlog benchmark; testnet: the end-to-end tests): they run in the first pass
# without it, and skipping them under it keeps make test under 6 minutes on 2
# cores. The CLI (cmd/plug/plugcli) is left out: its tests drive a spawned plug
# binary, whose goroutines the detector in the test process does not see.
RACE_PKGS := ./chain/crypto/... ./chain/state/... ./chain/exec/... ./chain/store/... \
	./chain/mempool/... ./chain/p2p/... ./chain/gateway/... ./chain/client/... \
	./chain/node/... ./relay/... ./testnet/...

.PHONY: all build test vet lint race mutate fuzz bench tools clean demo

# staticcheck is fetched through the module proxy at a pinned version.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

all: build

build:
	$(GO) mod download
	$(GO) build -buildvcs=auto -o bin/plug ./cmd/plug

# make demo: two local chains of 4 validators and a relay settle a DvP, a PvP and
# a trade that aborts and is refunded, in a temporary directory removed after.
demo: build
	bin/plug demo

vet:
	$(GO) mod download
	$(GO) vet $(PKGS)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

lint:
	$(GO) run $(STATICCHECK) ./...

# make test: vet, staticcheck, every test, then the race detector on the concurrent
# packages (see RACE_PKGS).
test: vet lint
	$(GO) test -count=1 -timeout 20m $(PKGS)
	@$(MAKE) --no-print-directory race

# make race: the race-detector pass of make test alone. Its tests mostly wait on
# timers and sockets, so four packages at a time overlap their waits (40 to 55 s
# instead of 75 s on 2 cores).
race:
	$(GO) test -count=1 -race -short -p 4 -timeout 20m $(RACE_PKGS)

# make mutate: build the crosschain package with each mutation of its engine
# (crosschain/mutation_test.go) and check that the simulation of the shipped
# relay catches it. A build per mutation: about two minutes.
mutate:
	$(GO) test -count=1 -timeout 20m -run TestEngineMutations ./crosschain -mutations -v

# make fuzz FUZZTIME=30s runs each fuzz target for a while (seed corpora run in make test).
FUZZTIME ?= 20s
fuzz:
	@for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -H '^func Fuzz' | sed -E 's#^\./([^:]*)/[^/:]*:func (Fuzz[A-Za-z0-9_]*).*#\1:\2#'); do \
	  pkg=$${spec%%:*}; fn=$${spec##*:}; echo "== $$pkg $$fn"; \
	  $(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) || exit 1; done

BENCHTIME ?= 3x
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./chain/...

clean:
	rm -rf bin
