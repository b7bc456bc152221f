"""The CRF fixtures these tests share (tests/crf_world.py)."""
from tests.crf_world import *  # noqa: F401,F403
