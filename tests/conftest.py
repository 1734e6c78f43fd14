"""Top-level test configuration: its folder (tests/) is on sys.path, so helpers shared by several
test folders (``leak_check``) import by name like each folder's own helpers."""
