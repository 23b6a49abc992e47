# The two commands: `make demo` and `make test`. Both install what is missing first.
CARGO ?= cargo

.PHONY: demo test deps build demo-stop demo-reset

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace

demo: build
	$(CARGO) run -q -p tenantgate -- demo

demo-stop:
	$(CARGO) run -q -p tenantgate -- demo --stop

demo-reset: build
	$(CARGO) run -q -p tenantgate -- demo --reset

test: deps
	$(CARGO) test --workspace --no-fail-fast
