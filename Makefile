# The workbench's entry points. Each creates the virtual environment on first use, so a fresh
# machine needs only Python 3 (and PostgreSQL and RabbitMQ, which `cqrs-demo up` starts if they
# are installed here but stopped).
#   make lab    JupyterLab on the notebooks (the URL with its token is printed)
#   make test   every test, and every notebook under nbval, against the real servers
#   make run    the stack alone, in the foreground, on ports 8080 and 8081
#   make tour   every notebook executed headless into HTML under build/tour/
#   make bench  the benchmarks: JSON and charts under benchmarks/results/
#   make student  the student's edition of the notebooks (solutions stubbed) under build/student/

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lab run test tour bench student clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[lab,instructor,test]'
	touch $@

install: $(VENV)/.installed

lab: install
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks

run: install
	$(BIN)/cqrs-demo up

test: install
	$(BIN)/pytest

tour: install
	$(BIN)/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=600 \
		--output-dir build/tour notebooks/*.ipynb
	@echo "open build/tour/ in a browser to preview the course"

student: install
	$(BIN)/python -m cqrs_demo.course.edition notebooks build/student

clean:
	rm -rf $(VENV) .run build .pytest_cache

bench: install
	$(BIN)/cqrs-demo bench
