# The interface everyone uses: `make demo`, `make test`, `make bench`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test bench install clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

## Build and run the demo: SQLite, Celery eager, console e-mail, both trials, a user per role.
demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py demo_setup
	$(PY) manage.py runserver 127.0.0.1:8000

## The layer contract (.importlinter), then the whole test suite (SQLite unless DATABASE_URL
## points elsewhere).
test: install
	bin/ensure-test-packages
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest $(PYTEST_ARGS)

## Benchmarks on the local PostgreSQL (see bench/README.md); results in bench/results/.
bench: install
	$(PY) bench/randomise_http.py
	$(PY) bench/daily_reminders.py
	$(PY) bench/pages.py
	$(PY) bench/enrolment_report.py
	$(PY) bench/export_stream.py
	$(PY) bench/dispensing.py
	$(PY) bench/casebook.py

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache
