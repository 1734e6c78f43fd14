"""The one test stack and its helpers, shared by the e2e, chaos and trigger tests (and ``http`` and
``TERMINAL`` by the orchestrator tests).

- ``stack``: ``Stack`` and ``running_stack(...)`` (the local cloud + devhost running function_app.py).
- ``worlds``: the example world, the tagged test world, the app folder with fast queue polling.
- ``policy``: ``FAST_POLICY``, ``QUEUE_SETTINGS``, ``TERMINAL``.
- ``http``: ``http()`` and ``wait_for()``.
- ``eventgrid``: deallocation events as Event Grid and CloudEvents deliver them.
- ``webhooks``: a local webhook receiver.
- ``leaks``: the secret scan.

Dev-only: nothing deployed imports it. Tests import it as ``tests.support`` (the repository root is
on ``sys.path`` under ``python -m pytest``). ``bench/`` and ``examples/demo.py`` keep their own stacks:
the bench runs the production policy scaled by its time scale (not the fast policy) on its own world,
and ``make demo`` should not depend on the test tree.
"""
