"""`python -m pipeline <command>`."""

from pipeline.base.quick_exit import quick_exit
from pipeline.commands.cli import main

quick_exit(main())
