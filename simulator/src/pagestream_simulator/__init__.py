"""The pagestream traffic simulator (see issue 3)."""
