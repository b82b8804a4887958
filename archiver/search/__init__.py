"""Full-text search over the archive: a derived Whoosh index, rebuildable from the database.

Library: ``whoosh-reloaded`` 2.7.5. The original Whoosh 2.7.4 (unmaintained since 2016) has invalid
escape sequences that are SyntaxWarnings on Python 3.12 and errors under ``-W error`` (this project's
test setting); whoosh-reloaded is the same code, API and on-disk index format with those fixed. The
rewrite ``whoosh-ng`` changes the index format, so it is not a drop-in.

Modules: ``schema`` (fields, analysis, record -> document), ``query`` (the query language -> a tree,
with positioned errors), ``plan`` (tree -> index terms), ``postings`` (segments, posting blocks,
cached term sets), ``engine`` (evaluation, counting, ranking), ``indexer`` (catch-up, rebuild,
locking, high-water mark), ``searcher`` (``search()``: run a query, hydrate hits from the database).
Nothing here is imported by ``archiver`` at start-up: commands import it when they need it.
"""
