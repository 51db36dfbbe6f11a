from captioner_gui.cli import main

raise SystemExit(main())
