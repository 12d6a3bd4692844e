"""`python -m runtime.scenes OUT ...`: write a generated street-scene video (see cli.py)."""

from runtime.scenes.cli import main

raise SystemExit(main())
