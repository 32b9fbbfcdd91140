"""One adapter per outside system; the only places that do IO."""
