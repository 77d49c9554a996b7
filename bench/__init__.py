"""The on-sale rush benchmark (``make bench``); see bench/__main__.py."""
