"""Store: the SQLite database (sqlite-utils) that holds sources' health, items, runs and fetches.

Plain functions that take a `sqlite_utils.Database` and return data. Knows nothing of HTTP or
parsing: the collect flow hands it plain dicts.
"""
