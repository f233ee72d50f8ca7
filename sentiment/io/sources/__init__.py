"""Data sources: the Bybit and Fear & Greed REST clients, the stream and the replay exchange."""
