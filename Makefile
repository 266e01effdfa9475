# PLUG build, test and benchmark entry points. Everything a fresh machine needs is
# fetched by these targets through the Go module proxy.
GO ?= go
PKGS := ./...
# Packages that run goroutines of their own get the race detector.
RACE_PKGS := ./chain/crypto/... ./chain/state/... ./chain/exec/...

.PHONY: all build test vet lint race fuzz bench tools clean demo

# staticcheck is fetched through the module proxy at a pinned version.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

all: build

build:
	$(GO) mod download
	$(GO) build -o bin/plug ./cmd/plug

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

# make test: vet, staticcheck, every test, then the race detector on the concurrent packages.
test: vet lint
	$(GO) test -count=1 -timeout 20m $(PKGS)
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)

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
