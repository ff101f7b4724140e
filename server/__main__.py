"""`python -m server ...` is the `hangar` command."""

from server.app.main import main

raise SystemExit(main())
