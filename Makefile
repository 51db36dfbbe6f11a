# The two commands a fresh machine needs are `make run` and `make test` (see README.md).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
IMAGES ?= resources/examples
MODEL ?= coco

.PHONY: install install-test run test bundle

install:
	$(PIP) install -e .

# pynput (macOS's hotkeys) is tested on its X11 listener. Without its dependencies: on Linux they would build
# evdev, which only its uinput listener needs. scikit-image only for the real photos its wheel ships (the reading
# tests place them on generated screens); it is never imported, so none of its dependencies are needed.
install-test:
	$(PIP) install -e '.[test]'
	$(PIP) install --no-deps 'pynput>=1.7' 'scikit-image>=0.22'

# Install, fetch the model on first use (about 1 GB from the Hugging Face Hub), describe the example images. Offline
# the download fails in one line and the images are still described: their text read, their pictures found.
run: install
	$(PYTHON) -m captioner_gui models download $(MODEL) || true
	$(PYTHON) -m captioner_gui describe $(IMAGES) --model $(MODEL)

test: install-test
	$(PYTHON) -m pytest -q

# The app with Python inside, for people who have never used pip (README: "Installers and bundles").
bundle:
	$(PIP) install -e . pyinstaller
	$(PYTHON) packaging/build.py
