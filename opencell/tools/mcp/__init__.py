"""Tools from Model Context Protocol servers: a bot YAML's ``mcp:`` entries.

- ``options.py``: an entry's own keys (``allow``, ``max_result_chars``); no SDK needed;
- ``connection.py``: one supervised session with a server (stdio or streamable HTTP);
- ``results.py``: a ``CallToolResult`` as what the model reads and what is recorded;
- ``source.py``: the tools an entry allows, as the toolbox sees them.

Everything but ``options.py`` needs the optional ``mcp`` package (``pip install
'opencell[mcp]'``); nothing here is imported unless a bot has an ``mcp:`` entry.
"""
