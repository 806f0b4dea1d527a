import sys

from unitalker.cli import main

sys.exit(main())
