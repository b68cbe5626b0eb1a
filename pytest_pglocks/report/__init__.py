"""Where the pglocks report goes besides the terminal: pictures, JUnit XML, pytest-html.

Loaded only when one of them is asked for (``--pglocks-report``, ``--junitxml``, ``--html``).
"""
