# The two commands the README starts with. Both work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-quick install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# Colorize the bundled sample photos with the bundled default model.
demo: install
	$(BIN)/koala colorize koala/samples -o out --overwrite
	@echo "Colorized sample photos are in $(CURDIR)/out/"

# Install koala with its test and Beam extras (and Chromium for the browser test), run the whole suite.
test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,beam]"
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest -q

# While iterating: the same install, the tests marked neither slow nor browser. CI runs `make test`.
test-quick: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,beam]"
	$(BIN)/python -m pytest -q -m "not slow and not browser"

clean:
	rm -rf $(VENV) out build *.egg-info
