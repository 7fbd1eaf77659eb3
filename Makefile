# The README's test command is `make test`; .ci/run installs what it needs and runs it.
GO ?= go
FUZZTIME ?= 20s

.PHONY: test unit fuzz ruletests build
test: build unit fuzz ruletests

build:
	$(GO) vet ./...
	$(GO) build -o bin/qguard ./cmd/qguard

unit:
	$(GO) test -count=1 -timeout 60m -p 1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./verdict

ruletests: build
	./bin/qguard test examples/tests
