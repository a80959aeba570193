# judgerl: two commands do all set-up on a fresh machine.
#   make quickstart   venv + pinned deps + embedded models, then the whole loop offline
#   make test         venv + deps + models + llama.cpp server, then the test suite
PY      := .venv/bin/python
JUDGERL := .venv/bin/judgerl
STAMP   := .venv/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: venv models llama-server test quickstart clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	bash scripts/install_deps.sh $(PY)             # uv (pinned) or pip; torch the CPU build, never a CUDA download
	rm -f .venv/.installed-*; touch $@

models: venv
	$(JUDGERL) models fetch smollm2-135m-instruct

llama-server: venv
	bash scripts/install_llama_server.sh $(PY)

test: venv models llama-server
	$(PY) -m pytest -q -ra --durations=20 $(PYTEST_ARGS)

quickstart: venv models
	$(JUDGERL) quickstart $(QUICKSTART_ARGS)

clean:
	rm -rf .venv runs .pytest_cache
