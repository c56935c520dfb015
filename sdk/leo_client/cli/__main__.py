"""python -m leo_client.cli: the same as `leo`."""

import sys

from leo_client.cli.main import main

sys.exit(main())
