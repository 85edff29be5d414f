"""`python -m incidents.stub_agent`."""

import sys

from incidents.stub_agent import main

sys.exit(main())
