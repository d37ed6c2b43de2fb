"""The lightweight runtime: preprocessing, engines, retrieval and the command line.

It never imports torch at module level; a test holds that line.
"""
