# Two commands for a newcomer: `make demo` and `make test`. Everything else is a building block.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: install demo demo-pixels test lint bench bench-lerobot bench-sb3 clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install realrl with its test extras

DEMO_STEPS ?= 10000

demo: install  ## (re)creates runs/demo: pixel demos + contact sheet, then PickCube (state) trained by a learner and 2 actor processes
	rm -rf runs/demo
	$(BIN)/realrl demos record --task PickCube --source scripted --episodes 10 --obs pixels --out runs/demo/demos --contact-sheet runs/demo/contact_sheet.png
	$(BIN)/realrl demos info runs/demo/demos
	$(BIN)/realrl train --task PickCube --obs state --actors 2 --steps $(DEMO_STEPS) --eval-every 1000 --out runs/demo/train
	@echo "learning curve: runs/demo/train/learning_curve.png  (tensorboard --logdir runs/demo/train/tensorboard)"
	@echo "actor logs and final lines: runs/demo/train/actors/"

DEMO_PIXELS_STEPS ?= 10000
# Each actor's control rate: a CPU learner on one thread makes ~6 pixel updates/s, so two actors at
# 3 Hz keep about one update per env step (at the real robot's 10 Hz they would outrun it 3x).
DEMO_PIXELS_HZ ?= 3
PIXELS := runs/demo-pixels

demo-pixels: install  ## (re)creates runs/demo-pixels: PickCube from two 128x128 cameras, a learner and 2 actor processes, on the CPU recipe (--agent.encoder auto: demos + noisy rollouts -> a pretrained frozen encoder -> train)
	rm -rf $(PIXELS)
	$(BIN)/realrl train --task PickCube --obs pixels --actors 2 --actor-hz $(DEMO_PIXELS_HZ) --steps $(DEMO_PIXELS_STEPS) --eval-every 1000 --out $(PIXELS)
	$(BIN)/realrl demos sheet $(PIXELS)/demos --out $(PIXELS)/contact_sheet.png
	@echo "learning curve: $(PIXELS)/learning_curve.png  (the run's own encoder: $(PIXELS)/encoder.pt)"

test: install  ## lint and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install  ## speed benchmarks, one JSON object each
	$(BIN)/realrl bench sim --json
	$(BIN)/realrl bench learner --json
	$(BIN)/realrl bench transport --json

# LeRobot 0.4.4 beside the project's env, not in it: the wheel and only what its SAC modules import
# (plus transformers for --encoder resnet18), run on the project's own torch.
LEROBOT := $(VENV)/lerobot-0.4.4
LEROBOT_PACKAGES := lerobot==0.4.4 draccus==0.10.0 mergedeep "pyyaml~=6.0" "pyyaml-include~=1.4" toml \
	"typing-inspect~=0.9.0" mypy-extensions "huggingface-hub>=0.34.2,<0.36" requests urllib3 idna \
	charset-normalizer certifi safetensors "einops>=0.8,<0.9" "accelerate>=1.10,<2" psutil \
	"imageio>=2.34,<3" "deepdiff>=7.0.1,<9" orderly-set "pyserial>=3.5,<4" \
	"transformers>=4.57.1,<5" regex "tokenizers>=0.22,<=0.23.0"

$(LEROBOT)/.installed: | $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(LEROBOT) $(LEROBOT_PACKAGES)
	touch $@

bench-lerobot: $(LEROBOT)/.installed  ## LeRobot 0.4.4's SAC learner update at `realrl bench learner`'s shapes, one JSON object
	PYTHONPATH=.:$(LEROBOT) $(BIN)/python -m benchmarks.lerobot_sac --json

# Stable-Baselines3 beside the project's env, not in it: the wheel alone, on the project's torch and
# gymnasium (its other dependency, cloudpickle, comes with gymnasium).
SB3 := $(VENV)/sb3-2.9.2

$(SB3)/.installed: | $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(SB3) stable-baselines3==2.9.2
	touch $@

SB3_ENV ?= Walker2d-v5

bench-sb3: $(SB3)/.installed  ## SB3's SAC on $(SB3_ENV) at the control suite's schedule (50k steps, seeds 0 and 1), one JSON object
	PYTHONPATH=.:$(SB3) $(BIN)/python -m benchmarks.sb3_sac --env $(SB3_ENV) --json

clean:
	rm -rf $(VENV) runs *.egg-info .pytest_cache .ruff_cache
