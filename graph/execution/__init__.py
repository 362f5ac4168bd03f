"""Compiled execution: validated query operations answered from a plan made once per document."""
