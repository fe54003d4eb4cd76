# DeepMedix-R1 Recipes: the table of contents of the pipeline.
# Each target is one command a user could also type. `make help` lists them.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The CPU environment is locked for CPython 3.11 (torch 2.14.1 wheels).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.setup-complete
PYTEST_ARGS ?=

# Tests and the demo never touch the network: wandb logs offline, the Hugging Face hub is off.
OFFLINE_ENV := WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OFFLINE_PY := $(OFFLINE_ENV) $(PY)

.PHONY: help setup system-deps test demo train-all check-recipes data stage1 cold-start stage2 stage3 merge eval arena viewer \
	follow serve-teacher easyr1-merger ray-head ray-worker bench-rewards bench-nlg bench-arena lock check-gpu-env clean-venv \
	eval-baselines

help:  ## List the targets.
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort | expand -t 18

setup: $(SETUP_STAMP)  ## Create .venv with the pinned CPU environment (idempotent).

# Reinstalls only when the lock or the package metadata change.
$(SETUP_STAMP): requirements/cpu.lock pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else \
	  f"make setup: the CPU lock is for CPython 3.11, but $(PYTHON) is {v[0]}.{v[1]}; pass PYTHON=/path/to/python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/cpu.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(PY) -m pip check
	touch $@

# System packages the tests need, from Debian (installed once when missing; needs root, as on CI
# machines): a Java runtime for the report metrics (PTB tokenizer, METEOR) and chromium +
# chromium-driver for the viewer's end-to-end test (test tools cannot download browsers here).
system-deps:  ## Install Java, chromium and chromium-driver from Debian when missing.
	@command -v java >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's default-jre-headless, chromium and chromium-driver for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless \
	    chromium chromium-driver \
	  || { echo "make system-deps: could not install them (needs root and Debian's apt)" >&2; exit 1; }; }

test: setup system-deps  ## Run the test suite in .venv.
	$(OFFLINE_PY) -m pytest $(PYTEST_ARGS)

DEMO_DIR ?= outputs/demo
SEED ?= 0
demo: setup  ## The whole chain on a generated world with a tiny Qwen2.5-VL; each stage must learn (CPU, offline; SEED=n).
	@echo "make demo: generated releases (findings drawn in the pixels) -> data prep -> stage 1 SFT -> cold-start"
	@echo "traces (offline template teacher) -> stage 2 SFT -> GRPO (TRL backend) -> every stage evaluated, tiny Qwen2.5-VL."
	$(OFFLINE_PY) -m training.run --config-name demo stage=all force=true run_dir=$(DEMO_DIR) seed=$(SEED)
	$(OFFLINE_PY) -m rewards validate $(DEMO_DIR)/data/grpo/train.parquet
	$(OFFLINE_PY) -m rewards compare
	$(OFFLINE_PY) -m eval.viewer export --items-file $(DEMO_DIR)/data/test/grounding.jsonl \
	  --predictions stage2=$(DEMO_DIR)/eval/stage2/predictions.jsonl \
	  --predictions stage3=$(DEMO_DIR)/eval/stage3/predictions.jsonl --out $(DEMO_DIR)/eval/viewer --limit 4
	@echo "make demo: done. Stage by stage: $(DEMO_DIR)/eval/report/stages.md (and stages.png, reward_curve.png);"
	@echo "all tables and figures: $(DEMO_DIR)/eval/report; viewer PNGs (true boxes white): $(DEMO_DIR)/eval/viewer."
	@echo "Rendered trainer configs in $(DEMO_DIR)/configs, logs in $(DEMO_DIR)/logs, datasets in"
	@echo "$(DEMO_DIR)/data (manifest.json), models in $(DEMO_DIR)/stage{1,2,3}."

# Training runs in the active conda environment on GPU nodes (environment.yml), else in .venv.
TRAIN_PYTHON ?= $(if $(CONDA_PREFIX),python,$(PY))
TRAIN_DEPS := $(if $(CONDA_PREFIX),,setup)
DATA_ROOT ?=
DATA_OUT ?=
RUN_DIR ?= outputs/run
RUN_ARGS ?=
DATA_ARGS ?=
COLD_START_ARGS ?=
FORCE ?=
NNODES ?= 1
NODE_RANK ?= 0
MASTER_ADDR ?= 127.0.0.1
GPUS_PER_NODE ?=
SERVE_TEACHER ?=
TEACHER_GPUS ?=
# FORCE=1 reruns the selected stages from scratch (their old outputs moved aside); FORCE=0 or unset does not.
FORCE_ARG = $(if $(filter 1 true yes,$(FORCE)),force=true,$(if $(filter-out 0 false no,$(FORCE)),$(error \
	FORCE=$(FORCE): use FORCE=1 to rerun stages from scratch, FORCE=0 or nothing to resume)))
# wandb logs offline unless you set WANDB_MODE yourself (training.run does the same for every stage).
export WANDB_MODE ?= offline
RUN_STAGE = $(TRAIN_PYTHON) -m training.run run_dir=$(RUN_DIR) $(if $(DATA_ROOT),data_root=$(DATA_ROOT)) \
	$(if $(DATA_OUT),data_dir=$(DATA_OUT)) $(FORCE_ARG) launch.nnodes=$(NNODES) \
	launch.node_rank=$(NODE_RANK) launch.master_addr=$(MASTER_ADDR) \
	$(if $(GPUS_PER_NODE),launch.gpus_per_node=$(GPUS_PER_NODE)) $(if $(SERVE_TEACHER),cold_start.serve.enabled=true) \
	$(if $(TEACHER_GPUS),'cold_start.serve.gpus="$(TEACHER_GPUS)"') \
	$(if $(DATA_ARGS),"data.overrides='$(DATA_ARGS)'") $(if $(COLD_START_ARGS),"cold_start.overrides='$(COLD_START_ARGS)'") \
	$(RUN_ARGS)

train-all: $(TRAIN_DEPS)  ## The whole chain: data, stage1, cold_start, stage2, stage3, merge, eval (resumes; node rank 0).
	$(RUN_STAGE) stage=all

follow: $(TRAIN_DEPS)  ## Node rank > 0 of a multi-node run: join rank 0's torchrun stages (NNODES, NODE_RANK, MASTER_ADDR).
	$(RUN_STAGE) stage=follow

check-recipes: $(TRAIN_DEPS)  ## Render and validate every trainer config of the run; launch nothing.
	$(RUN_STAGE) stage=check

data: $(TRAIN_DEPS)  ## Build the datasets from DATA_ROOT into DATA_OUT (DATA_ARGS="key=value ...").
	$(RUN_STAGE) stage=data

stage1: $(TRAIN_DEPS)  ## Stage 1: instruction SFT (LLaMA-Factory).
	$(RUN_STAGE) stage=stage1

cold-start: $(TRAIN_DEPS)  ## Teacher-written reasoning traces for stage 2 (COLD_START_ARGS=...; SERVE_TEACHER=1 TEACHER_GPUS=0,1).
	$(RUN_STAGE) stage=cold_start

serve-teacher: $(TRAIN_DEPS)  ## Serve the configured teacher with vLLM on TEACHER_GPUS until Ctrl-C (COLD_START_ARGS=...).
	$(TRAIN_PYTHON) -m data_prep.serve_teacher $(if $(TEACHER_GPUS),--gpus $(TEACHER_GPUS)) $(COLD_START_ARGS)

stage2: $(TRAIN_DEPS)  ## Stage 2: cold-start reasoning SFT from stage 1 (LLaMA-Factory).
	$(RUN_STAGE) stage=stage2

stage3: $(TRAIN_DEPS)  ## Stage 3: GRPO from stage 2 (EasyR1; RUN_ARGS=grpo_backend=trl for TRL).
	$(RUN_STAGE) stage=stage3

merge: $(TRAIN_DEPS)  ## EasyR1's best checkpoint -> Hugging Face weights (RUN_ARGS=merge.checkpoint=last|<step>).
	$(RUN_STAGE) stage=merge

easyr1-merger: $(TRAIN_DEPS)  ## Fetch EasyR1's scripts/model_merger.py at the pinned commit into .cache/ (sha256-checked).
	$(TRAIN_PYTHON) -c 'from omegaconf import OmegaConf; from training.run import easyr1_merger; \
	  print(easyr1_merger(OmegaConf.create({"launch": {"easyr1_dir": None}})))'

eval: $(TRAIN_DEPS)  ## Inference on XrayBench with the GRPO model, scores, report (RUN_DIR/eval).
	$(RUN_STAGE) stage=eval

# Table 1's other rows: each model's card (recipes/eval/models/<name>.yaml) says how to serve it;
# start the servers first (the cards' serve.command), then list the cards. Our run's scored eval
# folder joins the report when it exists.
MODELS ?=
EVAL_ITEMS ?= $(if $(DATA_OUT),$(DATA_OUT),$(RUN_DIR)/data)/test/xraybench.jsonl
BASELINES_DIR ?= $(RUN_DIR)/baselines
BASELINES_ARGS ?=
eval-baselines: $(TRAIN_DEPS)  ## Table 1's baselines from their cards (MODELS="qwen2.5-vl-7b medgemma ..."): infer, score, one report.
	@test -n "$(MODELS)" || { echo 'make eval-baselines: set MODELS="<card> ..." (cards: recipes/eval/models)' >&2; exit 2; }
	$(TRAIN_PYTHON) -m eval.baselines --models $(MODELS) --items-file $(EVAL_ITEMS) --out $(BASELINES_DIR) \
	  $(if $(wildcard $(RUN_DIR)/eval/metrics.json),--run ours=$(RUN_DIR)/eval) $(BASELINES_ARGS)

bench-nlg: setup  ## Report metrics: our BLEU/ROUGE-L vs pycocoevalcap on 4,547 pairs.
	$(PY) benchmarks/nlg_metrics.py

VIEWER_CONFIG ?= recipes/eval/viewer.yaml
viewer: $(TRAIN_DEPS)  ## Grounded-reasoning viewer / expert annotation on 127.0.0.1 (VIEWER_CONFIG=...).
	$(TRAIN_PYTHON) -m eval.viewer serve --config $(VIEWER_CONFIG)

ARENA_ARGS ?=
arena: $(TRAIN_DEPS)  ## Report Arena (ARENA_ARGS="--model A=a.jsonl --model B=b.jsonl --out DIR [--judge reference]").
	@test -n "$(ARENA_ARGS)" || { echo 'make arena: set ARENA_ARGS="--model A=... --model B=... --out DIR"' >&2; exit 2; }
	$(TRAIN_PYTHON) -m eval.arena $(ARENA_ARGS)

bench-arena: setup  ## Report Arena sampling: uniform vs active on 10 simulated models, 20 seeds.
	$(PY) benchmarks/arena_sampling.py

RAY_HEAD ?=
ray-head:  ## Multi-node GRPO: start Ray's head on this node (then `make stage3 NNODES=N` here).
	ray start --head --port=6379

ray-worker:  ## Multi-node GRPO: join this node to the head (RAY_HEAD=<head ip>:6379).
	@test -n "$(RAY_HEAD)" || { echo "make ray-worker: set RAY_HEAD=<head ip>:6379" >&2; exit 2; }
	ray start --address=$(RAY_HEAD)

bench-rewards: setup  ## Reward throughput: batch reward vs per-sample nltk + rouge-score.
	$(PY) benchmarks/reward_throughput.py

lock:  ## Re-resolve requirements/cpu.in into requirements/cpu.lock in a scratch venv.
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -r requirements/cpu.in
	.lock-venv/bin/pip check
	{ echo "# Generated by \`make lock\` from requirements/cpu.in: do not edit by hand."; \
	  echo "# CPython 3.11, Linux x86_64. Installed by \`make setup\`."; \
	  .lock-venv/bin/pip freeze --exclude-editable; } > requirements/cpu.lock.tmp
	mv requirements/cpu.lock.tmp requirements/cpu.lock
	rm -rf .lock-venv

check-gpu-env:  ## On a GPU node, in the conda env: check the GPU stack imports and sees a GPU.
	python -c 'import torch, vllm, flash_attn, verl, llamafactory, rewards; \
	  assert torch.cuda.is_available(), "torch sees no GPU"; \
	  print(f"torch {torch.__version__} ({torch.cuda.device_count()} GPUs), vllm {vllm.__version__}, flash-attn {flash_attn.__version__}, EasyR1/verl {verl.__version__}, llamafactory {llamafactory.__version__}: OK")'

clean-venv:  ## Remove .venv (the next `make setup` rebuilds it).
	rm -rf $(VENV)
