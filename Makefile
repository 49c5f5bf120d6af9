# The two commands of the README. Both install what they need first (scripts/setup.sh).
PY := .venv/bin/python

.PHONY: setup demo demo-lvscare test lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m sealos_lab.demo

demo-lvscare: setup
	$(PY) -m sealos_lab.lvscare_demo

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: setup
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks
	.venv/bin/mypy

bench: setup
	$(PY) benchmarks/failover --trials 20
