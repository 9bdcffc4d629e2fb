# The README's commands. `make run` and `make test` work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: install run test lint format bench translations clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,prod]'
	touch $(STAMP)

install: $(STAMP)

# Embedded SQLite database in instance/, in-process jobs, demo data, served on 127.0.0.1:5000.
run: install
	ITVSH_ENV=$${ITVSH_ENV:-development} $(BIN)/itvsh db upgrade
	ITVSH_ENV=$${ITVSH_ENV:-development} $(BIN)/itvsh demo
	ITVSH_ENV=$${ITVSH_ENV:-development} $(BIN)/itvsh run --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench

# Re-extract the message catalogue and compile the German (and English) translations.
translations: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k ngettext:1,2 \
		--project=itvsh --copyright-holder='IT-Verbund Schleswig-Holstein' \
		-o itvsh/translations/messages.pot itvsh
	$(BIN)/pybabel update -i itvsh/translations/messages.pot -d itvsh/translations --no-fuzzy-matching
	$(BIN)/pybabel compile -d itvsh/translations

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
