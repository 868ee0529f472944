"""The front end: messenger.js, the embed snippet, its views and the linter for product code."""
