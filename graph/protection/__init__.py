"""Protection: query limits, input hygiene, rate limits, persisted documents, sign-in."""
