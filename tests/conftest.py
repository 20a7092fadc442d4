"""Session-scoped fixtures shared by the whole suite live in tests/fixtures/ (one module per area)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fixtures.clip_fixtures import *  # noqa: E402,F401,F403
from fixtures.data_fixtures import *  # noqa: E402,F401,F403
from fixtures.trainer_fixtures import *  # noqa: E402,F401,F403
from fixtures.softcpt_fixtures import *  # noqa: E402,F401,F403

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _image_feature_cache_in_tmp(tmp_path_factory):
    """Tests never write the users' image-feature cache (~/.cache/promptkit)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PROMPTKIT_IMAGE_FEATURE_CACHE", str(tmp_path_factory.mktemp("image_features")))
    yield
    mp.undo()
