"""The participant fixtures these tests share (tests/participant_world.py)."""
from tests.participant_world import *  # noqa: F401,F403
