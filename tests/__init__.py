"""Test suite (a package so shared helpers such as tests.chat_server import reliably)."""
