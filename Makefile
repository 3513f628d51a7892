# The two commands a user needs: `make run` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The benchmark's quix-streams reference only, apart from the project's pins: bench/requirements-quix.txt
QUIX_VENV := .venv-quix
KAFKA_PORT ?= 9092
export KAFKA_PORT
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:$(KAFKA_PORT)

.PHONY: help venv kafka kafka-stop worker run test unit e2e lint typecheck bench bench-restore chaos clean

help:
	@echo "make run        set up, start Kafka and the worker, feed sample traffic, show awards"
	@echo "make test       set up, start Kafka, lint, type-check and run the whole test suite"
	@echo "make bench      benchmark: client and framework ceilings, this worker, a quix-streams reference"
	@echo "make bench-restore  benchmark: a fresh worker restoring \$$RESTORE_USERS users' states from the changelog"
	@echo "make chaos      faults (SIGKILLs, broker kill, scaling, malformed input) against exact awards, <= ~15 min"
	@echo "make kafka      start the local single-node Kafka (KRaft) on 127.0.0.1:\$$KAFKA_PORT"
	@echo "make kafka-stop stop it"

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

kafka:
	@bash deploy/kafka/kafka.sh start

kafka-stop:
	@bash deploy/kafka/kafka.sh stop

worker: venv kafka
	$(BIN)/stream worker

run: venv kafka
	$(BIN)/stream demo

lint: venv
	$(BIN)/ruff check stream tests bench chaos
	$(BIN)/ruff format --check stream tests bench chaos

typecheck: venv
	$(BIN)/mypy stream

unit: venv
	$(BIN)/pytest -q tests/unit

test: venv kafka lint typecheck
	$(BIN)/pytest -q -ra

$(QUIX_VENV)/.installed: bench/requirements-quix.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install --quiet --upgrade pip
	$(QUIX_VENV)/bin/pip install --quiet -r bench/requirements-quix.txt
	@touch $@

bench: venv kafka $(QUIX_VENV)/.installed
	$(BIN)/python bench/bench.py --quix-python $(QUIX_VENV)/bin/python

# A worker with an empty data dir restoring its table from a changelog of every user's state keys.
RESTORE_USERS ?= 1000000
RESTORE_PARTITIONS ?= 8

bench-restore: venv kafka
	$(BIN)/python bench/restore.py --users $(RESTORE_USERS) --partitions $(RESTORE_PARTITIONS)

# Not part of `make test`. CHAOS_ARGS passes options, e.g. CHAOS_ARGS="--only malformed --events 5000".
chaos: venv kafka
	$(BIN)/python chaos/run.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) $(QUIX_VENV) data .cache/kafka
