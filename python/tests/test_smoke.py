def test_placeholder_import():
    import vstore.vector_store as vs
    assert callable(vs.search_articles)
