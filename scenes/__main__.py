"""`python -m scenes OUT ...`: write a generated street-scene video (see cli.py)."""

from scenes.cli import main

raise SystemExit(main())
