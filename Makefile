# The commands people and CI run alike (.ci/run calls `make test`).
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
PYTHON  ?= python3

.PHONY: install lint test test-unit demo up bench bench-agent bench-embed bench-semcache bench-ingest bench-fairness bench-hotpath broker-fetch browser phoenix clean bench-vectors

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,fast]"
	touch $(STAMP)

install: $(STAMP)

broker-fetch: install
	$(BIN)/podium broker fetch

# Debian's Chromium renders `podium report` in a test (it is not on a fresh machine).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || (echo "install Debian's chromium (apt-get install chromium): the report test needs it" && exit 1)

lint: install
	$(BIN)/ruff check streams agents tests bench
	$(BIN)/ruff format --check streams agents tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/podium schemas check

# Arize Phoenix for the test that reads podium's agent traces back from it, in a venv of its own:
# its dependencies are many and pin versions podium's venv does not share. The stamp names the
# version, so raising PHOENIX_VERSION reinstalls and nothing else does.
PHOENIX_VERSION := 20.26.1
PHOENIX_VENV    := .venv-phoenix
PHOENIX_STAMP   := $(PHOENIX_VENV)/.installed-$(PHOENIX_VERSION)

$(PHOENIX_STAMP):
	rm -rf $(PHOENIX_VENV)
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install --quiet --upgrade pip
	$(PHOENIX_VENV)/bin/pip install --quiet "arize-phoenix==$(PHOENIX_VERSION)"
	touch $(PHOENIX_STAMP)

phoenix: $(PHOENIX_STAMP)

# The whole suite against a real broker that the tests start themselves.
# pytest exits 5 when it collects no tests: make treats that as the failure it is.
test: lint broker-fetch browser phoenix
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q -m "not kafka"

# PROVIDER=sim runs the generate stages against the provider simulator with injected faults.
PROVIDER ?= local
demo: install
	$(BIN)/podium demo --provider $(PROVIDER)

# The same stack, kept running for interactive use until Ctrl-C.
up: install
	$(BIN)/podium up --provider $(PROVIDER)

# The semantic cache on the shipped pairs (hit and false-hit rates per split) and its lookup latency.
bench-semcache: install
	$(BIN)/python bench/semantic_cache.py

bench: install
	$(BIN)/python bench/stage_throughput.py
	$(BIN)/python bench/stage_cpu.py
	$(BIN)/python bench/codec.py
	$(BIN)/python bench/faust_commit_probe.py --records 1500 --concurrency 500
	$(BIN)/python bench/support_pipeline.py
	$(BIN)/python bench/market_windows.py
	$(BIN)/python bench/content_pipeline.py --provider sim
	$(BIN)/python bench/agent_loop.py
	$(BIN)/python bench/embeddings.py
	$(BIN)/python bench/kb_ingest.py

# The hot path (issue 15): the stage's pass-through against raw aiokafka, quixstreams (a venv of the
# bench's own), faust and raw confluent-kafka, each worker in its own process, in turns over
# ROUNDS rounds: msgs/s, the ratio to raw, worker CPU per record, and the issue's targets.
RECORDS ?= 20000
ROUNDS  ?= 3
bench-hotpath: install
	$(BIN)/python bench/stage_throughput.py --records $(RECORDS) --rounds $(ROUNDS)

# The knowledge base's ingestion on Kafka (`podium run kb` in its own process, its own broker and
# PODIUM_HOME): documents/s and chunks/s against the same work in process, the embed share.
DOCUMENTS ?= 1000
bench-ingest: install
	$(BIN)/python bench/kb_ingest.py --documents $(DOCUMENTS)

# Tenant fairness: B's p95 end-to-end alone, then under A's flood of 5,000 with fairness and with
# the FIFO before it (a 20 ms handler, 64 in flight, the worker in its own process), and the ratios.
bench-fairness: install
	$(BIN)/python bench/tenant_fairness.py

# The agent loop alone: overhead per step at 0 ms, requests/s at 1 s with 500 loops in flight.
bench-agent: install
	$(BIN)/python bench/agent_loop.py

# The local embedding model: texts/s batched against one at a time, and through the gateway.
bench-embed: install
	$(BIN)/python bench/embeddings.py

# Dense search on LanceDB, pgvector (a PostgreSQL the bench starts from the pgserver wheel) and
# exact numpy, 10,000 and 100,000 synthetic chunks: p50/p99, recall@10, load rate; then bm25,
# dense and hybrid through the HybridRetriever on each store against their in-process baselines.
# SIZES="10000" runs the smaller corpus alone.
SIZES ?= 10000 100000
bench-vectors: install
	$(BIN)/python bench/vector_store.py --sizes $(SIZES)

clean:
	-$(BIN)/podium broker stop
	rm -rf .podium .pytest_cache .mypy_cache .ruff_cache
