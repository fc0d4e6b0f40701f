# stg: build, test, demo, bench, install, and the fleet targets (sync, hosts, probe, age).
# `make help` lists the targets and every variable.

CARGO       ?= cargo
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
DOCDIR      ?= $(DATADIR)/doc/stg
BUILDDIR    ?= target/release
DOCGENDIR   ?= $(BUILDDIR)/docgen
DISTDIR     ?= .
BINS        := stg-dump stg-restore stg-hosts stg-probe stg-age
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# Fleet targets. Empty means "not given" (the tool's own default, or an error naming it).
TOOLDIR    ?=
INVENTORY  ?= /etc/stg/inventory.json
HOSTS_FILE ?= /etc/hosts
DRY_RUN    ?=
FORMAT     ?=
REPO       ?= .
MAX_AGE    ?= 90d
DB         ?=
FROM       ?=
TO         ?=
MASK       ?=
KEY        ?=
PRE_HOOK   ?=
POST_HOOK  ?=
KEEP       ?=
DUMP_ARGS  ?=
RESTORE_ARGS ?=
SSH        ?= ssh -o BatchMode=yes

# `make help` prints these lines (the "#: " prefix), so every variable is documented once.
#: Install (make install, install-files, uninstall; DESTDIR is prepended to every path):
#:   PREFIX=/usr/local   BINDIR=$(PREFIX)/bin   DATADIR=$(PREFIX)/share   MANDIR=$(DATADIR)/man
#:   BASHCOMPDIR=$(DATADIR)/bash-completion/completions   ZSHCOMPDIR=$(DATADIR)/zsh/site-functions
#:   FISHCOMPDIR=$(DATADIR)/fish/vendor_completions.d     DOCDIR=$(DATADIR)/doc/stg
#:   DESTDIR=            staging root for packaging (rpmbuild's %{buildroot}, debian/stg)
#:   BUILDDIR=target/release  where install-files takes the binaries (and stg-docgen) from
#:   DOCGENDIR=$(BUILDDIR)/docgen  where stg-docgen writes the man pages and completions
#:   CARGO=cargo         DISTDIR=.  where make dist writes stg-VERSION.tar.gz
#:   FUZZ_SECONDS=60     seconds per target for make fuzz
#: Fleet (make sync, hosts, probe, age):
#:   TOOLDIR=            directory of the stg binaries for hosts/probe/age (empty: PATH)
#:   INVENTORY=/etc/stg/inventory.json   the inventory (docs/inventory.md)
#:   HOSTS_FILE=/etc/hosts   hosts file that make hosts changes; DRY_RUN=1 shows the diff only
#:   FORMAT=             text or json (empty: text on a terminal, json otherwise)
#:   REPO=.  MAX_AGE=90d     the Ansible checkout make age scans, and its threshold
#:   DB= FROM= TO=       make sync: database, production host (runs stg-dump), staging host
#:                       (runs stg-restore); all three required
#:   MASK= KEY=          masking rules and key file, paths on FROM (stg-dump --mask, --key-file)
#:   PRE_HOOK= POST_HOOK=  commands stg-restore runs on TO around the swap (no single quotes)
#:   KEEP=               previous copies stg-restore keeps (its default: 1)
#:   IF_UNCHANGED=1      make sync refuses (exit 1) when TO's copy has local changes since its
#:                       last sync, or they are unknown (stg-restore --if-unchanged)
#:   NOTIFY= NOTIFY_TIMEOUT=  command run on TO before the swap with the pending summary (JSON)
#:                       on stdin, e.g. NOTIFY='mail -s resync infra@example.org' (no single
#:                       quotes); its time limit (stg-restore's default: 60s)
#:   DUMP_ARGS= RESTORE_ARGS=  more flags for stg-dump / stg-restore (e.g. -h HOST -p PORT)
#:   SSH="ssh -o BatchMode=yes"  the remote shell: SSH HOST COMMAND...

tool = $(if $(TOOLDIR),$(TOOLDIR)/)$(1)

.PHONY: all help build test lint demo bench install install-files uninstall dist clean fuzz \
	sync hosts probe age

all: build

help: ## This list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14
	@echo
	@sed -n 's/^#: \{0,1\}//p' $(MAKEFILE_LIST)

build: ## Release binaries in target/release
	$(CARGO) build --release --workspace --bins

lint: ## cargo fmt --check, clippy -D warnings, rustdoc -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

test: ## Install missing test packages (as root), lint, then every test against real services
	bash tests/install-deps.sh
	$(MAKE) lint
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

demo: ## The SOP end to end on two throwaway local PostgreSQL clusters
	$(CARGO) build --release --workspace --bins
	bash demo/demo.sh target/release

bench: ## Benchmarks against the SOP procedure and peers; writes docs/benchmarks.md
	$(CARGO) build --release --workspace --bins
	bash bench/run.sh target/release

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := copy_text copy_rewrite stream hosts_block inventory jsonl conditions untrusted_text json_path \
	restore_script sql_parser signed_stream age_git_output

fuzz: ## Every fuzz target for FUZZ_SECONDS (60) s each; not part of test (docs/security.md)
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@# sql_parser builds PostgreSQL's parser (libpg_query) with bindgen, which needs libclang.
	ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || [ -n "$$LIBCLANG_PATH" ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get install -y --no-install-recommends libclang-dev; } || \
	  { echo "make fuzz: the sql_parser target needs libclang (apt-get install libclang-dev, dnf install clang-devel)"; exit 1; }
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build -s none
	failed=; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  seeds=; [ -d fuzz/seeds/$$t ] && seeds=fuzz/seeds/$$t; \
	  dict=; [ -f fuzz/dicts/$$t.dict ] && dict=-dict=fuzz/dicts/$$t.dict; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s none $$t fuzz/corpus/$$t $$seeds -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 $$dict \
	    || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (inputs in fuzz/artifacts/)"; exit 1; fi

install: build ## Build, then install binaries, man pages, completions, docs under $(PREFIX)
	$(MAKE) install-files

install-files: ## Install from $(BUILDDIR) without building (for packaging)
	rm -rf $(DOCGENDIR)
	$(BUILDDIR)/stg-docgen --out $(DOCGENDIR) >/dev/null
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(DOCDIR)
	for b in $(BINS); do install -m 0755 $(BUILDDIR)/$$b $(DESTDIR)$(BINDIR)/$$b; done
	install -m 0644 $(DOCGENDIR)/man/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(DOCGENDIR)/completions/bash/* $(DESTDIR)$(BASHCOMPDIR)/
	install -m 0644 $(DOCGENDIR)/completions/zsh/* $(DESTDIR)$(ZSHCOMPDIR)/
	install -m 0644 $(DOCGENDIR)/completions/fish/* $(DESTDIR)$(FISHCOMPDIR)/
	install -m 0644 README.md CHANGELOG.md docs/*.md $(DESTDIR)$(DOCDIR)/

uninstall: ## Remove what install put under $(PREFIX)
	for b in $(BINS); do \
	  rm -f $(DESTDIR)$(BINDIR)/$$b $(DESTDIR)$(MANDIR)/man1/$$b.1 $(DESTDIR)$(MANDIR)/man1/$$b-*.1 \
	    $(DESTDIR)$(BASHCOMPDIR)/$$b $(DESTDIR)$(ZSHCOMPDIR)/_$$b $(DESTDIR)$(FISHCOMPDIR)/$$b.fish; \
	done
	rm -rf $(DESTDIR)$(DOCDIR)

dist: ## Source tarball $(DISTDIR)/stg-VERSION.tar.gz of the committed HEAD (git archive)
	git archive --format=tar.gz --prefix=stg-$(VERSION)/ -o $(DISTDIR)/stg-$(VERSION).tar.gz HEAD
	@echo $(DISTDIR)/stg-$(VERSION).tar.gz

# The ssh pipeline of the staging SOP, nothing written to disk on either side. bash for
# pipefail: a failed dump must fail the sync, not just the restore's end of the pipe.
sync: SHELL := /bin/bash
sync: .SHELLFLAGS := -eu -o pipefail -c
sync: ## Copy database DB from FROM into staging host TO: ssh FROM stg-dump | ssh TO stg-restore
	@if [ -z "$(DB)" ] || [ -z "$(FROM)" ] || [ -z "$(TO)" ]; then \
	  echo "make sync: DB=, FROM= and TO= are required, e.g. make sync DB=fas2 FROM=db01 TO=db02.stg (make help)" >&2; \
	  exit 2; fi
	$(SSH) $(FROM) stg-dump $(if $(MASK),--mask $(MASK)) $(if $(KEY),--key-file $(KEY)) $(DUMP_ARGS) $(DB) \
	  | $(SSH) $(TO) stg-restore --dbname $(DB) $(if $(KEEP),--keep $(KEEP)) \
	    $(if $(PRE_HOOK),--pre-hook "'$(PRE_HOOK)'") $(if $(POST_HOOK),--post-hook "'$(POST_HOOK)'") \
	    $(if $(filter-out 0 no false,$(IF_UNCHANGED)),--if-unchanged) $(if $(NOTIFY),--notify "'$(NOTIFY)'") \
	    $(if $(NOTIFY_TIMEOUT),--notify-timeout $(NOTIFY_TIMEOUT)) \
	    $(if $(FORMAT),--format $(FORMAT)) $(RESTORE_ARGS)

hosts: ## stg-hosts apply INVENTORY to HOSTS_FILE (DRY_RUN=1: show the diff only)
	$(call tool,stg-hosts) apply --inventory $(INVENTORY) --file $(HOSTS_FILE) $(if $(DRY_RUN),--dry-run) \
	  $(if $(FORMAT),--format $(FORMAT))

probe: ## stg-probe INVENTORY: is staging isolated? (Nagios exit codes)
	$(call tool,stg-probe) --inventory $(INVENTORY) $(if $(FORMAT),--format $(FORMAT))

age: ## stg-age REPO: staging-only changes older than MAX_AGE (exit 1 if any)
	$(call tool,stg-age) --repo $(REPO) --max-age $(MAX_AGE) $(if $(FORMAT),--format $(FORMAT))

clean: ## Remove build output
	$(CARGO) clean
