# Two commands for a newcomer: `make demo` and `make test`. Everything else is a building block.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install realrl with its test extras

demo: install  ## record scripted demos in the sim twin and write a contact sheet of camera frames
	$(BIN)/realrl demos record --task PickCube --source scripted --episodes 10 --obs pixels --out runs/demo/demos --contact-sheet runs/demo/contact_sheet.png
	$(BIN)/realrl demos info runs/demo/demos

test: install  ## lint and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install  ## speed benchmarks, one JSON object each
	$(BIN)/realrl bench sim --json

clean:
	rm -rf $(VENV) runs *.egg-info .pytest_cache .ruff_cache
