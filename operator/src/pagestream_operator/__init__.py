"""The pagestream operator: reconciles each PageAnalyticsPipeline into the objects that run it."""
