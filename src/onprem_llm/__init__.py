"""Controller-side tools for the onprem.llm Ansible collection."""

__version__ = "0.1.0"
