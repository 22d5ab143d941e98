"""Sources: the registry of where alliance news is published, fetching it politely, and parsing
it into normalised entries. Knows nothing of the database: the collect flow hands its results to
`store`."""
