"""Fixtures: test conventions registered under unique names (see tests/meshdata.py)."""

from tests.meshdata import (  # noqa: F401 - re-exported as fixtures
    faceless_conv,
    norig_conv,
    rig_anim,
    rig_conv,
    sphere_anim,
    sphere_conv,
)
