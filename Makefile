VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	touch $(STAMP)

test: $(STAMP)
	@# tests/test_alerts.py renders the HTML report in headless Chromium (Debian's package).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(VENV)/bin/ruff check alertpull connectors tests bench demo
	$(VENV)/bin/mypy alertpull connectors
	@# Four workers on the two cores: most of a test's time is spent waiting on a fake.
	$(PY) -m pytest -n 4

demo: $(STAMP)
	$(PY) demo/run_demo.py

bench: $(STAMP)
	$(PY) bench/run_bench.py

clean:
	rm -rf $(VENV) alerts .alertpull demo/.out
