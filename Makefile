# stg: build, test, demo, bench, install. `make help` lists the targets and variables.

CARGO  ?= cargo
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
BINS   := stg-dump stg-restore stg-hosts stg-probe stg-age

.PHONY: all help build test lint demo bench install clean

all: build

help: ## This list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14
	@echo
	@echo "Variables: PREFIX=$(PREFIX) (install prefix), CARGO=$(CARGO)"

build: ## Release binaries in target/release
	$(CARGO) build --release --workspace --bins

lint: ## cargo fmt --check, clippy -D warnings, rustdoc -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

test: lint ## Lint, then every test against real PostgreSQL, git, sshd, network namespaces
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

demo: ## The SOP end to end on two throwaway local PostgreSQL clusters
	$(CARGO) build --release --workspace --bins
	bash demo/demo.sh target/release

bench: ## Benchmarks against the SOP procedure and peers; writes docs/benchmarks.md
	$(CARGO) build --release --workspace --bins
	bash bench/run.sh target/release

install: build ## Install the binaries into $(BINDIR)
	install -d $(DESTDIR)$(BINDIR)
	for b in $(BINS); do install -m 0755 target/release/$$b $(DESTDIR)$(BINDIR)/$$b; done

clean: ## Remove build output
	$(CARGO) clean
