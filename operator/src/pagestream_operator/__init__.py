"""The pagestream operator: reconciles PageAnalyticsPipeline resources (see issue 5)."""
