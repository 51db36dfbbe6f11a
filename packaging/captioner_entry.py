"""Entry point of the bundled `captioner` command (PyInstaller runs this file as a script)."""

from captioner_gui.cli import main

raise SystemExit(main())
