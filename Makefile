# The README's test command is `make test`; .ci/run installs what it needs and runs it.
GO ?= go
FUZZTIME ?= 15s

.PHONY: test unit fuzz ruletests build
test: build unit fuzz ruletests

build:
	$(GO) vet ./...
	$(GO) build -o bin/qguard ./cmd/qguard

unit:
	$(GO) test -count=1 -timeout 60m -p 1 ./...

# Bounded fuzzing of what an attacker or a user controls: packets and policy files.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./verdict
	$(GO) test -run '^$$' -fuzz '^FuzzPipeline$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./verdict
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./config
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePacket$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s ./queue

ruletests: build
	./bin/qguard test examples/tests
