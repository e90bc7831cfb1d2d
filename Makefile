# luaserve — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/luaserve
PKGS    := ./...
# Each fuzz target runs this long inside `make test`; `make fuzz FUZZTIME=5m` digs deeper.
FUZZTIME ?= 5s

.PHONY: build run test unit fuzz bench lint clean

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/luaserve

# Serves examples/ (its config starts the embedded memcached, so nothing else is needed).
run: build
	./$(BIN) -p examples -c conf/nginx.conf

test: lint unit fuzz

unit:
	$(GO) test -count=1 -timeout 8m $(PKGS)

# Every fuzz target, briefly: `go test -fuzz` takes one target per run.
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

bench:
	scripts/bench.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
