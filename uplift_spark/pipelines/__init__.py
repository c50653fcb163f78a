"""One module per stage: read tables → call modules → write tables. Only this layer knows table names."""
