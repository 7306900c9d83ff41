"""Retrieval stages, one owner each: analysis, lexical (bm25s adapter), dense, fusion, documents, exact lookup, floor.

`kb.search.Searcher.search` runs them as a pipeline; kb.search re-exports the public names.
"""
