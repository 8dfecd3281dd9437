import sys

from labutils.grade.cli import main

sys.exit(main())
