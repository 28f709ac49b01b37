# The two commands of the README:
#   make run   - install into .venv, build the console, start the platform with SQLite and simulated devices
#   make test  - install what the tests need (Python, Debian and npm packages) and run the suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test soak lint bench install web system clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

web: install
	bash scripts/build-web.sh

run: install web
	$(BIN)/xueliang serve --demo

system:
	bash scripts/setup-system.sh

test: system install web
	$(BIN)/ruff check xueliang tests bench
	$(BIN)/mypy
	bash scripts/run-tests.sh

soak: install
	$(BIN)/pytest -m slow -p no:cacheprovider

lint: install
	$(BIN)/ruff check xueliang tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var web/node_modules xueliang/web_dist
