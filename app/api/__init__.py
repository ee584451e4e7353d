"""The versioned JSON API, one router per area."""
