# The two commands of the README: `make test` and `make demo`. Both run `make setup` first.
SHELL := /bin/bash
ENV := source ./env.sh
PYTEST_ARGS ?=

.PHONY: setup test demo lint colcon-build clean-env

setup:
	@bash scripts/setup_env.sh

test: setup
	@$(ENV) && python -m pytest $(PYTEST_ARGS)

demo: setup
	@$(ENV) && python -m instaseg_ros.cli demo $(DEMO_ARGS)

lint: setup
	@$(ENV) && ruff check instaseg_ros test benchmarks launch

colcon-build: setup
	@$(ENV) && colcon build --base-paths . --build-base build --install-base install

clean-env:
	rm -rf .venv .ros_ws .ros_ws.log
