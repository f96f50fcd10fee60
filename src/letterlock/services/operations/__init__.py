"""Operations: the running server's periodic work."""
