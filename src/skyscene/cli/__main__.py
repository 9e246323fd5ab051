import sys

from skyscene.cli import main

sys.exit(main())
