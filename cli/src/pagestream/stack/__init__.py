"""The local stack: real servers started from pinned, cached artifacts.

Each component module offers a small class with ``ensure_installed`` / ``start`` / ``stop`` /
``healthy``; :mod:`pagestream.stack.stack` composes them and remembers ports across restarts.
"""
