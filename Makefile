# The two commands: `make demo` and `make test`. `make help` lists every target.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export DJANGO_SETTINGS_MODULE := triage_site.settings

.DEFAULT_GOAL := help
.PHONY: help install test lint typecheck format screenshots demo serve bench-ingest bench-dashboard bench-load clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed ## Make .venv and install requirements.txt

lint: install ## ruff check and format --check, the import layering (lint-imports)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: install ## mypy with django-stubs over incidents/ (configured in pyproject.toml)
	DJANGO_DEBUG=1 $(VENV)/bin/mypy

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install lint typecheck ## Lint, type-check, check migrations, run the suite (DATABASE_URL picks the database)
	DJANGO_DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest

screenshots: install ## Run the browser tests and copy their screenshots (var/screenshots/) to docs/
	rm -rf var/screenshots
	$(VENV)/bin/pytest tests/browser -p no:cacheprovider
	cp var/screenshots/*.png docs/

DEV := DJANGO_DEBUG=1 $(PY) manage.py

demo: install ## Migrate, ingest the samples, triage them with the stub agent, serve 127.0.0.1:8000
	$(DEV) migrate --no-input
	$(DEV) ingest_events samples/events.jsonl
	@# The stub agent writes synthetic demo reports; it runs only when named (never by default).
	TRIAGE_AGENT_COMMAND=stub $(DEV) run_triage --until-empty --concurrency 4
	@# A shift works the queue (every on-call state) and silences staging for four hours.
	$(DEV) demo_oncall
	@# New faults arrive while a slow worker takes them one at a time: every status shows;
	@# those from staging are counted on the silence instead.
	$(DEV) ingest_events samples/arriving.jsonl
	$(DEV) create_demo_user
	@echo "Dashboard: http://127.0.0.1:8000/  (Ctrl-C stops the server, the worker and the arriving faults)"
	@# ... and keep arriving (the same faults firing again, fresh timestamps) whenever fewer than
	@# three wait, so the demo always has pending and investigating incidents, however long it runs.
	TRIAGE_AGENT_COMMAND=stub TRIAGE_STUB_DELAY=15 $(DEV) run_triage --concurrency 1 --poll-interval 2 & worker=$$!; \
	$(DEV) demo_trickle samples/arriving.jsonl --interval 5 --keep-pending 3 & trickle=$$!; \
	$(DEV) deliver_notifications --concurrency 1 & deliverer=$$!; \
	trap 'kill -TERM $$worker $$trickle $$deliverer 2>/dev/null; wait $$worker $$trickle $$deliverer' EXIT; \
	$(DEV) runserver 127.0.0.1:8000

bench-ingest: install ## Ingestion against COPY on PostgreSQL (DATABASE_URL=postgres://…; EVENTS=200000)
	$(PY) bench/ingest.py --events $(or $(EVENTS),200000)

bench-dashboard: install ## Dashboard timings at 1,000,000 incidents (DATABASE_URL=postgres://…)
	DJANGO_DEBUG=1 $(PY) manage.py migrate --no-input
	DJANGO_DEBUG=1 $(PY) manage.py seed_demo --incidents 1000000 --flush
	$(PY) bench/dashboard.py

bench-load: install ## gunicorn under load, after bench-dashboard (DATABASE_URL=postgres://…)
	$(PY) bench/load.py

serve: install ## Production server: collectstatic, migrate, gunicorn (set DJANGO_SECRET_KEY, DATABASE_URL)
	$(PY) manage.py collectstatic --no-input --verbosity 0
	$(PY) manage.py migrate --no-input
	$(VENV)/bin/gunicorn triage_site.wsgi --config gunicorn.conf.py

clean: ## Remove the venv, the SQLite database and workspaces
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm var
