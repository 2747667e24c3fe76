"""labkit.fl (filled in by its chapter's issue)."""

__all__: list[str] = []
