"""Session-scoped fixtures shared by the whole suite live in tests/fixtures/ (one module per area)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fixtures.clip_fixtures import *  # noqa: E402,F401,F403
from fixtures.data_fixtures import *  # noqa: E402,F401,F403
from fixtures.trainer_fixtures import *  # noqa: E402,F401,F403
