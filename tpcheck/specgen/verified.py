"""What ``tpcheck lint diffusers:ClassName`` gave for each class: written by
``docs/diffusers_table.py`` (do not edit by hand), read by :mod:`.catalogue`."""

DIFFUSERS_VERSION = ""
RESULTS: dict[str, str] = {}
