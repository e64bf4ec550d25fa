"""The pagestream Spark Structured Streaming job (see issue 4)."""
