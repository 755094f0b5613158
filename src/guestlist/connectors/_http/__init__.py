"""HTTP machinery every connector shares: client with retries, rate limits, paginators."""
