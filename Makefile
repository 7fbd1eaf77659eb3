# The README's test command is `make test`; .ci/run installs what it needs and runs it.
GO ?= go
# Fuzzing budgets are execution counts, not durations: with a duration, Go
# 1.26's fuzz coordinator can report its own deadline as a failure
# ("context deadline exceeded", no failing input; go.dev/issue/75804, fixed
# in Go 1.27) on a busy machine. FUZZX scales every count (e.g. FUZZX=10).
FUZZX ?= 1
fuzzn = $(shell echo $$(( $(1) * $(FUZZX) )))x

# Stamped into the binary (qguard version, qguard_build_info).
VERSION ?= $(shell packaging/version.sh)
COMMIT ?= $(shell git describe --always --dirty --abbrev=40 --match=NONE 2>/dev/null)
LDFLAGS = -X github.com/qguard/qguard/internal/service.version=$(VERSION) \
	-X github.com/qguard/qguard/internal/service.commit=$(COMMIT)

# make install [PREFIX=/usr/local] [DESTDIR=staging dir]
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/qguard
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

.PHONY: test lint race unit fuzz ruletests build docs install uninstall deb deb-test
test: build lint race unit fuzz ruletests deb-test

build:
	$(GO) vet ./...
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/qguard ./cmd/qguard

# golangci-lint v2, pinned in go.mod as a tool; configuration in .golangci.yml.
lint:
	$(GO) tool golangci-lint run --allow-serial-runners ./...

# The race detector over the tests that need no privileges: every test but
# the privileged TestIntegration* ones (internal/e2e holds only those).
race:
	$(GO) test -race -count=1 -timeout 20m -skip '^TestIntegration' $$($(GO) list ./... | grep -v /internal/e2e)

unit:
	$(GO) test -count=1 -timeout 60m -p 1 ./...

# Bounded fuzzing of what an attacker or a user controls: packets and policy files.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(call fuzzn,150000) -fuzzminimizetime 3s -timeout 10m ./verdict/l7
	$(GO) test -run '^$$' -fuzz '^FuzzPipeline$$' -fuzztime $(call fuzzn,70000) -fuzzminimizetime 3s -timeout 10m ./verdict
	$(GO) test -run '^$$' -fuzz '^FuzzQUIC$$' -fuzztime $(call fuzzn,70000) -fuzzminimizetime 3s -timeout 10m ./verdict/l7
	$(GO) test -run '^$$' -fuzz '^FuzzDNSStream$$' -fuzztime $(call fuzzn,30000) -fuzzminimizetime 3s -timeout 10m ./verdict
	$(GO) test -run '^$$' -fuzz '^FuzzHTTPStream$$' -fuzztime $(call fuzzn,30000) -fuzzminimizetime 3s -timeout 10m ./verdict
	$(GO) test -run '^$$' -fuzz '^FuzzSNI$$' -fuzztime $(call fuzzn,50000) -fuzzminimizetime 3s -timeout 10m ./verdict/l7
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(call fuzzn,60000) -fuzzminimizetime 3s -timeout 10m ./config
	$(GO) test -run '^$$' -fuzz '^FuzzParseAnswer$$' -fuzztime $(call fuzzn,30000) -fuzzminimizetime 3s -timeout 10m ./names
	$(GO) test -run '^$$' -fuzz '^FuzzReadName$$' -fuzztime $(call fuzzn,30000) -fuzzminimizetime 3s -timeout 10m ./internal/dnswire
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePacket$$' -fuzztime $(call fuzzn,450000) -fuzzminimizetime 3s -timeout 10m ./queue

ruletests: build
	./bin/qguard test --mode kernel-first examples/tests
	./bin/qguard test --mode queue-all examples/tests

# Man pages (from the commands' help) and shell completions, into bin/.
docs: build
	rm -rf bin/man bin/completions
	./bin/qguard gen-man bin/man
	mkdir -p bin/completions
	./bin/qguard completion bash >bin/completions/qguard
	./bin/qguard completion zsh >bin/completions/_qguard
	./bin/qguard completion fish >bin/completions/qguard.fish

# The unit names the binary and the docs by their /usr/local and /usr
# paths; installed elsewhere it is rewritten to point at them. The example
# configuration is installed only where none exists (it is the admin's).
install: docs
	install -D -m 0755 bin/qguard $(DESTDIR)$(BINDIR)/qguard
	install -d $(DESTDIR)$(MANDIR)/man8
	install -m 0644 bin/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -D -m 0644 bin/completions/qguard $(DESTDIR)$(BASHCOMPDIR)/qguard
	install -D -m 0644 bin/completions/_qguard $(DESTDIR)$(ZSHCOMPDIR)/_qguard
	install -D -m 0644 bin/completions/qguard.fish $(DESTDIR)$(FISHCOMPDIR)/qguard.fish
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/local/bin/qguard|$(BINDIR)/qguard|g' \
	    -e 's|^Documentation=|Documentation=man:qguard-run(8) |' \
	    -e 's|/usr/share/doc/qguard|$(DOCDIR)|g' \
	    -e 's|/etc/qguard|$(SYSCONFDIR)/qguard|g' \
	    packaging/systemd/qguard.service >$(DESTDIR)$(UNITDIR)/qguard.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/qguard.service
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 packaging/README.md $(DESTDIR)$(DOCDIR)/README.packaging.md
	install -m 0644 examples/qguard.yaml $(DESTDIR)$(DOCDIR)/examples/qguard.yaml
	install -m 0644 packaging/qguard.yaml $(DESTDIR)$(DOCDIR)/examples/qguard.minimal.yaml
	install -m 0644 packaging/systemd/xdp.conf $(DESTDIR)$(DOCDIR)/examples/xdp.conf
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/qguard
	test -e $(DESTDIR)$(SYSCONFDIR)/qguard/qguard.yaml || \
	    install -m 0644 packaging/qguard.yaml $(DESTDIR)$(SYSCONFDIR)/qguard/qguard.yaml

# Everything install wrote except the configuration.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/qguard $(DESTDIR)$(MANDIR)/man8/qguard.8 $(DESTDIR)$(MANDIR)/man8/qguard-*.8 \
	    $(DESTDIR)$(BASHCOMPDIR)/qguard $(DESTDIR)$(ZSHCOMPDIR)/_qguard $(DESTDIR)$(FISHCOMPDIR)/qguard.fish \
	    $(DESTDIR)$(UNITDIR)/qguard.service
	rm -rf $(DESTDIR)$(DOCDIR)

# Debian package: the install above staged under /usr, packed by nfpm
# (go tool nfpm, pinned in go.mod). Man pages are gzipped as Debian wants.
DEB_VERSION ?= $(shell packaging/version.sh deb)
DEB_ARCH ?= $(shell $(GO) env GOARCH)
deb:
	rm -rf bin/deb-root bin/*.deb
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/bin/deb-root PREFIX=/usr \
	    UNITDIR=/usr/lib/systemd/system ZSHCOMPDIR=/usr/share/zsh/vendor-completions
	rm -rf bin/deb-root/etc
	gzip -9n bin/deb-root/usr/share/man/man8/*.8
	QGUARD_DEB_VERSION=$(DEB_VERSION) GOARCH=$(DEB_ARCH) \
	    $(GO) tool nfpm package --packager deb --config packaging/nfpm.yaml --target bin/
	@ls bin/*.deb

# Install the package on this machine (root, dpkg), check what it put
# where, and purge it again: see packaging/deb-test.sh.
deb-test: deb
	packaging/deb-test.sh bin/qguard_$(DEB_VERSION)_$(DEB_ARCH).deb $(VERSION) $(COMMIT)
