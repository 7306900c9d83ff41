"""Policy knowledge base: Chinese policy documents as a searchable, citable index."""

__version__ = "0.1.0"
