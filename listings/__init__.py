"""Short snippets the docs include; each is exercised by tests/test_listings.py."""
