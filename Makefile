# Every target sets itself up: the first one run creates .venv and installs the course.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUILD  := build
# Tests run in JOBS processes (pytest-xdist; a notebook stays in one), one thread each: on small models that
# uses the cores better than one process with several threads. The checkpoint cache's locks make sharing safe.
JOBS     ?= auto
PARALLEL := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: help setup course readme test test-gpu-path test-students test-digits test-slides mutation lint lab colab \
        executed slides site handouts student bench clean

help:
	@echo "make course   run every notebook (default profile) -> $(BUILD)/notebooks, $(BUILD)/results.md"
	@echo "              a subset: make course ONLY=03,05; another profile: UNLEARN_PROFILE=smoke make course"
	@echo "make readme   write the run times of $(BUILD)/results.json into README.md's table, its results into RESULTS.md"
	@echo "make test     lint, unit tests (in random order), every notebook under UNLEARN_PROFILE=smoke (nbval)"
	@echo "make test-gpu-path  every notebook's code under the gpu profile on a fake CIFAR-10 (CPU, minutes; CI runs it)"
	@echo "make test-students  the students' copies (no solutions) each run up to their first exercise (CI runs it)"
	@echo "make test-digits    every notebook and its claims on the offline fallback, scikit-learn's digits"
	@echo "make mutation      mutation testing (mutmut) of the measures, requests, batching, influence and unlearning,"
	@echo "                   each module against its own tests; scores into RESULTS.md. Some: make mutation MODULES=mia"
	@echo "make lab      JupyterLab on the notebooks (prints the URL to open)"
	@echo "make colab    rewrite the Colab badges and set-up blocks from pyproject.toml's URL and ref"
	@echo "make slides   lecture decks (reveal.js, offline) of the executed notebooks -> $(BUILD)/slides; with no"
	@echo "              executed notebooks it first runs the course on the smoke profile (minutes). Needs npm"
	@echo "make site     the course site: the executed notebooks as HTML pages and an index -> $(BUILD)/site"
	@echo "make handouts one PDF per deck, printed by headless Chromium -> $(BUILD)/slides/NN_topic.pdf"
	@echo "make test-slides  every deck and page in headless Chromium, offline: fit, images, maths (CI runs it)"
	@echo "make student  the students' copies of the notebooks, without solutions (nbgrader) -> $(BUILD)/student"
	@echo "make bench    training throughput: unlearnlib's loop against a conventional DataLoader loop; into RESULTS.md"
	@echo "make setup    only create $(VENV) and install"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -e '.[dev]'
	touch $@

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check unlearnlib tests conftest.py
	$(BIN)/ruff format --check unlearnlib tests conftest.py
	$(BIN)/ruff check --select F401,F811,F841 notebooks  # notebooks: no unused import or variable

# First say which dataset the notebooks will use, why, and how to get a better one.
test: $(STAMP)
	@UNLEARN_PROFILE=smoke $(BIN)/python -m unlearnlib.session
	@$(MAKE) --no-print-directory lint
	UNLEARN_PROFILE=smoke $(PARALLEL) $(BIN)/python -m pytest -m "not gpu_path and not students and not browser" \
	    -n $(JOBS) \
	    --dist loadscope

test-gpu-path: $(STAMP)
	$(PARALLEL) $(BIN)/python -m pytest -m gpu_path tests/test_gpu_path.py -n $(JOBS) --dist loadscope

# The students' copies (solutions removed by nbgrader) each run up to their first exercise, on the smoke profile.
test-students: $(STAMP)
	UNLEARN_PROFILE=smoke $(PARALLEL) $(BIN)/python -m pytest -m students tests/test_student.py -n $(JOBS)

test-digits: $(STAMP)
	UNLEARN_PROFILE=smoke UNLEARN_DATASET=digits $(PARALLEL) $(BIN)/python -m pytest notebooks -n $(JOBS) --dist loadscope

# Every module (its scores then go into RESULTS.md), or some: make mutation MODULES=forget,mia (printed only).
mutation: $(STAMP)
	$(PARALLEL) $(BIN)/python -m unlearnlib.mutation $(if $(MODULES),--modules $(MODULES),--results RESULTS.md)

# Runs every notebook even when one fails; ends with a table and a non-zero exit status if one failed.
course: $(STAMP)
	$(BIN)/python -m unlearnlib.course --out $(BUILD) $(if $(ONLY),--only $(ONLY))

readme: $(STAMP)
	$(BIN)/python -m unlearnlib.readme $(BUILD)/results.json

colab: $(STAMP)
	$(BIN)/python -m unlearnlib.colab --write

# No browser is opened: open the http://127.0.0.1:8888/lab?token=... URL it prints. Root (a container) needs
# --allow-root. More options: make lab LAB_ARGS="--ip=0.0.0.0 --port=8890".
lab: $(STAMP)
	@echo "Starting JupyterLab: open the URL with ?token= printed below in a browser; Ctrl-C twice stops it."
	$(BIN)/jupyter lab --no-browser $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS) notebooks

student: $(STAMP)
	$(BIN)/python -m unlearnlib.student --out $(BUILD)/student --course $(BUILD)/nbgrader

bench: $(STAMP)
	$(BIN)/python -m unlearnlib.bench --results RESULTS.md

# Decks and site are built from the executed notebooks of any profile (cells and slide metadata from notebooks/,
# outputs from $(BUILD)/notebooks); where there are none, the smoke profile makes them in minutes, EXECUTE_JOBS
# notebooks at once (their run times are then not the README's: make course runs one at a time).
EXECUTE_JOBS ?= 2
executed: $(STAMP)
	@test -d $(BUILD)/notebooks || { echo "no executed notebooks in $(BUILD)/notebooks: running the course on the \
	$${UNLEARN_PROFILE:-smoke} profile first, $(EXECUTE_JOBS) notebooks at a time"; \
	UNLEARN_PROFILE=$${UNLEARN_PROFILE:-smoke} $(PARALLEL) $(BIN)/python -m unlearnlib.course --out $(BUILD) \
	    --jobs $(EXECUTE_JOBS); }

slides/node_modules: slides/package.json
	@command -v npm >/dev/null || { echo "the decks load reveal.js and MathJax, installed with npm: install Node.js \
	and npm (Debian: apt-get install npm; elsewhere https://nodejs.org)"; exit 1; }
	npm install --prefix slides --no-audit --no-fund --loglevel=error
	touch $@

slides: executed slides/node_modules
	$(BIN)/python -m unlearnlib.slides decks
	@echo "decks in $(BUILD)/slides: open any .slides.html in a browser, no network needed (s: speaker view)"

site: executed slides/node_modules
	$(BIN)/python -m unlearnlib.slides site
	@echo "the course site: open $(BUILD)/site/index.html (no network needed)"

handouts: slides
	$(BIN)/python -m unlearnlib.browser pdf

# The decks and the site in headless Chromium with the network blocked: known-answer checks of the checker, then
# every slide of every deck (screenshots in $(BUILD)/slides/shots) and every page; skipped without a Chromium.
test-slides: executed slides/node_modules
	$(BIN)/python -m unlearnlib.slides decks site
	$(BIN)/python -m pytest -m browser tests/test_browser.py -p no:randomly

clean:
	rm -rf $(BUILD)
