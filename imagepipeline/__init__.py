"""A command-line client of the VM Image Pipeline's HTTP API, for CI pipelines and people.

``python -m imagepipeline`` (or the ``imagepipeline`` console script): ``capture``, ``status``, ``watch``,
``cancel`` and ``list``. It talks only HTTP to the app (it imports nothing of the app), sends its
function key or Entra ID token only to the base URL given, and exits 0 completed, 1 failed, 2 canceled,
3 usage error, 4 when the API could not be reached or followed.
"""

__version__ = "0.1.0"
