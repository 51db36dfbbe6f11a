"""Entry point of the bundled `captioner-gui` app (PyInstaller runs this file as a script)."""

from captioner_gui.app.main import main

raise SystemExit(main())
