"""Old name of sources/next_fetch.py, kept only for flows/collect.py until it imports that.

Remove when merging issue 10: flows/collect.py (or pipeline/collect.py) should import
`next_fetch_at` from `sources.next_fetch`.
"""

from .next_fetch import next_fetch_at as next_fetch_at
