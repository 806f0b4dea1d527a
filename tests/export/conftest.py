"""Fixtures: test conventions registered under unique names (see export_testdata)."""

from export_testdata import (  # noqa: F401 - re-exported as fixtures
    faceless_conv,
    norig_conv,
    rig_anim,
    rig_conv,
    sphere_anim,
    sphere_conv,
)
