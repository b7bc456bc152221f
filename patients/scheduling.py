"""Visit schedules: created at randomisation, recomputed when an anchor date changes.

``create_schedule`` is called by ``randomization.services.randomize`` inside the transaction
that writes the allocation, so a participant is never randomised without a schedule.
"""
from __future__ import annotations


def create_schedule(allocation) -> None:
    """Create the participant's visits from the protocol template for their arm.

    The visit model and the window arithmetic arrive with the scheduling work; until then a
    randomised participant has no planned visits, and this call is where they will be made.
    """
