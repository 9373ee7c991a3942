# The README's commands. Each sets up the virtual environment it needs in .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs package clean

demo: $(VENV)/.installed  ## train the built-in digits config (about a minute on a CPU)
	$(BIN)/open_sesemi -cn digits

test: $(VENV)/.installed-dev  ## run the test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check sesemi tests experiments examples docs/gen_pages.py

docs: $(VENV)/.installed-docs  ## build the documentation site into site/ (mkdocs.yml)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

package: $(VENV)/.installed-dev  ## build and check the sdist and wheel, then train from the installed wheel
	rm -rf dist
	$(BIN)/python -m build --sdist --wheel --outdir dist . > /dev/null
	$(BIN)/twine check --strict dist/*
	.ci/check_wheel $(BIN)/python dist/*.whl

# setuptools notes every editable install of a package laid out as this one (configs/ outside
# sesemi/) with a ten-line warning about folders named like the package; it asks nothing of you.
EDITABLE := PYTHONWARNINGS="ignore:Editable installation:UserWarning" $(BIN)/pip install --quiet -e

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created setup.py
	$(EDITABLE) .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.created setup.py
	$(EDITABLE) ".[dev]"
	touch $@ $(VENV)/.installed

$(VENV)/.installed-docs: $(VENV)/.created setup.py
	$(EDITABLE) ".[docs]"
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) build dist *.egg-info site
