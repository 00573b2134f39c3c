# The README's commands. `make up` runs the service, `make test` runs lint and the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FONTS := /usr/share/fonts/truetype/dejavu

.PHONY: all up test lint install clean

all: test

$(PY):
	python3 -m venv $(VENV) || { rm -rf $(VENV) && bash tests/system-deps.sh =python3-venv && python3 -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/digits up

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy api config formats pictures store worker scripts

# The browser tests drive Debian's Chromium, the failover tests Debian's redis-sentinel, the
# multi-host test iproute2's `ip`, the non-digit generator draws letters in DejaVu fonts;
# the suite starts its own redis-server.
test: lint
	bash tests/system-deps.sh /usr/bin/chromium=chromium /usr/bin/chromedriver=chromium-driver \
		redis-sentinel=redis-sentinel ip=iproute2 \
		$(FONTS)/DejaVuSans.ttf=fonts-dejavu-core $(FONTS)/DejaVuSans-Oblique.ttf=fonts-dejavu-extra
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
