# The workbench's entry points. Each creates the virtual environment on first use, so a fresh
# machine needs only Python 3 (and PostgreSQL and RabbitMQ, which `cqrs-demo up` starts if they
# are installed here but stopped).
#   make doctor checks this machine for a class, and prints the fix for anything wrong
#   make lab    JupyterLab on the notebooks (the URL with its token is printed)
#   make test   every test, and every notebook under nbval, against the real servers
#   make run    the stack alone, in the foreground, on ports 8080 and 8081
#   make tour   every notebook executed into a browsable course under build/tour/ (readable offline)
#   make bench  the benchmarks: JSON and charts under benchmarks/results/
#   make student  the student's edition of the notebooks (solutions stubbed) under build/student/
#   make node   the Node packages the tests and the tour use, fetched by npm into build/node/
#   make lock   refresh requirements.lock from pyproject.toml (keeps the pins that still fit)
#   make lock-upgrade  the same, moving every package to its newest release

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Installs are pinned: requirements.lock holds every package of the project and all its extras
# at one exact version each, with the hashes of its files, so a class on Monday and a class on
# Friday run the same code. pyproject.toml keeps ranges (what the code needs); the lock pins
# (what was tested). services/requirements.lock is the runtime part alone, at the same versions,
# for the image (services/Dockerfile); environment.yml installs requirements.lock too.
LOCK := requirements.lock
SERVICES_LOCK := services/requirements.lock
HUB_LOCK := classroom/hub-requirements.lock
# The resolver that writes both, itself pinned; it lives outside the project's environment.
UV_VERSION := 0.13.8
LOCK_TOOL := build/lock-tool
UV := $(LOCK_TOOL)/bin/uv
# --universal: one resolution for every OS and Python >= 3.11 (markers pick per machine), so the
# same lock serves this Linux machine, the Debian image and a student's laptop.
LOCK_OPTIONS := --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command 'make lock'

# JupyterLab refuses to start as root unless told to; containers and CI machines often run as root.
LAB_AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS ?=

.PHONY: install doctor lab run test tour bench student clean lock lock-upgrade node

# Rebuilt from scratch when the lock or pyproject.toml changes, so a package dropped from the
# lock leaves the environment too. The project itself goes in last, with --no-deps: everything
# it needs is already there, at the locked versions, and nothing is resolved again. `pip check`
# then catches a lock that no longer covers pyproject.toml (a dependency added, `make lock`
# forgotten). pip itself is upgraded unpinned: it is only the installer, and what it installs
# is fixed by the lock's versions and hashes.
$(VENV)/.installed: pyproject.toml $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	@$(BIN)/pip check || { echo "$(LOCK) does not cover pyproject.toml: run 'make lock'"; exit 1; }
	touch $@

install: $(VENV)/.installed

doctor: install
	$(BIN)/cqrs-demo doctor

# No browser is opened (there is none on a server); the URL with its token is printed instead.
lab: install
	@echo "Starting JupyterLab; open the http://127.0.0.1:...?token=... URL it prints below."
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks \
		--ServerApp.open_browser=False $(LAB_AS_ROOT) $(LAB_ARGS)

run: install
	$(BIN)/cqrs-demo up

test: install node
	$(BIN)/pytest

tour: install node
	$(BIN)/python -m cqrs_demo.course.tour --out build/tour

# Node packages, fetched at build time and never committed: configurable-http-proxy (JupyterHub's
# proxy, for the classroom test) and the widget renderer and require.js the tour's pages load
# from their own folder. node/package-lock.json pins them with their hashes, as requirements.lock
# does the Python ones; `npm ci` installs exactly that.
NODE_DIR := build/node
$(NODE_DIR)/.installed: node/package.json node/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: apt-get install npm (or install Node.js 18+)"; exit 1; }
	rm -rf $(NODE_DIR)
	mkdir -p $(NODE_DIR)
	cp node/package.json node/package-lock.json $(NODE_DIR)/
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: $(NODE_DIR)/.installed

student: install
	$(BIN)/python -m cqrs_demo.course.edition notebooks build/student

clean:
	rm -rf $(VENV) .run build .pytest_cache

bench: install
	$(BIN)/cqrs-demo bench

$(UV):
	$(PYTHON) -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/pip install --quiet uv==$(UV_VERSION)

# The services' lock and the classroom hub's are resolved under the full one as constraints, so
# their versions are the full lock's by construction (tests/unit/test_lock.py checks that they
# stay so).
lock: $(UV)
	$(UV) pip compile pyproject.toml --all-extras $(LOCK_OPTIONS) $(LOCK_ARGS) -o $(LOCK)
	$(UV) pip compile pyproject.toml --constraints $(LOCK) $(LOCK_OPTIONS) -o $(SERVICES_LOCK)
	$(UV) pip compile classroom/hub-requirements.in --constraints $(LOCK) $(LOCK_OPTIONS) -o $(HUB_LOCK)

lock-upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade
