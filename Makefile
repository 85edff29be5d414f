# The two commands: `make demo` and `make test`. `make help` lists every target.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export DJANGO_SETTINGS_MODULE := triage_site.settings

.DEFAULT_GOAL := help
.PHONY: help install test lint format demo serve clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed ## Make .venv and install requirements.txt

lint: install ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install lint ## Lint, check migrations, run the whole suite (DATABASE_URL picks the database)
	DJANGO_DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest

demo: install ## Migrate the SQLite default, serve the dashboard on 127.0.0.1:8000
	DJANGO_DEBUG=1 $(PY) manage.py migrate --no-input
	DJANGO_DEBUG=1 $(PY) manage.py runserver 127.0.0.1:8000

serve: install ## Production server: collectstatic, migrate, gunicorn (set DJANGO_SECRET_KEY, DATABASE_URL)
	$(PY) manage.py collectstatic --no-input --verbosity 0
	$(PY) manage.py migrate --no-input
	$(VENV)/bin/gunicorn triage_site.wsgi --config gunicorn.conf.py

clean: ## Remove the venv, the SQLite database and workspaces
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm var
