import sys

from tlc.cli import main

sys.exit(main())
