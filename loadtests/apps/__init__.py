"""Protocol-level benchmark apps (no frameworks), one module per interface.

Every module routes by path in the same way so the servers are compared on
identical work: ``/`` plaintext ``Hello, world!``, ``/echo`` echoes the POST
body, ``/64k`` returns 64 KiB, ``/file`` sends the file named by the
``LOADTEST_FILE`` environment variable (created by ``loadtests/run.py``).
"""
