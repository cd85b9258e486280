# Quick start: `make run` (serve with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 8000
export PORT

.PHONY: run test install install-test system-deps system-deps-test lint bench clean migrate seed

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt requirements.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

system-deps:
	@bash scripts/system-deps.sh runtime

system-deps-test:
	@bash scripts/system-deps.sh test

install: system-deps $(VENV)/.installed

install-test: system-deps-test $(VENV)/.installed-test

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: migrate
	@$(PY) manage.py seed_demo
	$(PY) manage.py serve --port $(PORT)

test: install-test
	$(PY) manage.py makemigrations --check --dry-run --settings=config.settings_test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install-test
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache
